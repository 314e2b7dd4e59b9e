// Package jobspec reads Cove job specs and computes the job digest.
//
// A job spec is a YAML file that names the guest image, the TEE, the sealed
// inputs, the command to run, the output recipient and the broker. The job
// digest is the SHA-256 of the spec's canonical form (see [Spec.Canonical]),
// which names each launch artifact by its SHA-256 rather than its path, so
// the same job has the same digest on every machine. The launcher binds the
// digest into the launch as HOST_DATA and the broker releases keys only to
// guests whose reports carry a digest it has been granted.
package jobspec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	"cove.dev/cove/internal/cachedir"
)

// Version is the only job spec version this package reads.
const Version = 1

// TEE names accepted in a spec.
const (
	TEESNP    = "snp"
	TEETDX    = "tdx"
	TEESimSNP = "sim-snp" // Cove's software SEV-SNP device, for development only
)

// Spec is a job spec as written in YAML.
type Spec struct {
	Version int      `yaml:"version"`
	Name    string   `yaml:"name"`
	Guest   Guest    `yaml:"guest"`
	TEE     string   `yaml:"tee"`
	Inputs  []Input  `yaml:"inputs"`
	Command []string `yaml:"command"`
	Output  Output   `yaml:"output"`
	KBS     KBS      `yaml:"kbs"`

	// Dir is the folder of the spec file; relative paths are taken from it.
	Dir string `yaml:"-"`
}

// Guest is the guest image and the VM's shape.
type Guest struct {
	Kernel    string `yaml:"kernel"`
	Initrd    string `yaml:"initrd"`
	Cmdline   string `yaml:"cmdline"`
	Firmware  string `yaml:"firmware"`
	VCPUs     int    `yaml:"vcpus"`
	MemoryMiB int    `yaml:"memory_mib"`
}

// Input is one sealed input file.
type Input struct {
	// Name is the input's name. The command reads the input from the
	// named pipe /run/cove/inputs/NAME inside the guest.
	Name string `yaml:"name"`
	Path string `yaml:"path"`
}

// Output is the recipient the job's output is sealed to.
type Output struct {
	// Recipient is an age X25519 recipient (age1...).
	Recipient string `yaml:"recipient" json:"recipient"`
}

// KBS is the key broker the guest attests to.
type KBS struct {
	URL string `yaml:"url"`
	// CAFile is the PEM certificate of the CA that signed the broker's TLS
	// certificate. The job digest covers its SHA-256, not its path.
	CAFile string `yaml:"ca_file"`
}

// FieldError is a spec error tied to one field, such as "guest.vcpus".
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Load reads and validates the spec at path. Paths in the spec may use
// ${VAR} environment references and are taken relative to the spec's
// folder.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	s.Dir = abs
	return s, nil
}

// Parse decodes and validates a spec. Unknown fields are errors, so a
// misspelled field never silently falls back to a default.
func Parse(b []byte) (*Spec, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the job spec is empty")
		}
		return nil, fmt.Errorf("invalid job spec: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid job spec: it contains more than one YAML document; keep one job per file")
	}
	// YAML would turn 1.5 into 1 and accept 0x1; a job's shape must be
	// written as plain whole numbers.
	for _, field := range [][]string{{"version"}, {"guest", "vcpus"}, {"guest", "memory_mib"}} {
		if err := checkWholeNumber(&root, field); err != nil {
			return nil, err
		}
	}
	strict := yaml.NewDecoder(bytes.NewReader(b))
	strict.KnownFields(true)
	var s Spec
	if err := strict.Decode(&s); err != nil {
		return nil, fmt.Errorf("invalid job spec: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks every field and returns the first error, naming its field.
func (s *Spec) Validate() error {
	switch {
	case s.Version != Version:
		return &FieldError{"version", fmt.Sprintf("is %d; this Cove reads version %d", s.Version, Version)}
	case !nameRE.MatchString(s.Name):
		return &FieldError{"name", fmt.Sprintf("%q is not a valid job name (lower-case letters, digits, '.', '_', '-'; at most 64)", s.Name)}
	case s.Guest.Kernel == "":
		return &FieldError{"guest.kernel", "is missing; name the guest kernel (bzImage)"}
	case s.Guest.Initrd == "":
		return &FieldError{"guest.initrd", "is missing; name the initramfs that carries cove-agent"}
	case s.Guest.Firmware == "":
		return &FieldError{"guest.firmware", "is missing; name the firmware the launch is measured with (OVMF.amdsev.fd for SEV-SNP)"}
	case s.Guest.VCPUs < 1 || s.Guest.VCPUs > 255:
		return &FieldError{"guest.vcpus", fmt.Sprintf("is %d; it must be between 1 and 255", s.Guest.VCPUs)}
	case s.Guest.MemoryMiB < 128:
		return &FieldError{"guest.memory_mib", fmt.Sprintf("is %d; the guest needs at least 128", s.Guest.MemoryMiB)}
	case strings.ContainsRune(s.Guest.Cmdline, 0):
		return &FieldError{"guest.cmdline", "contains a NUL byte"}
	}
	switch s.TEE {
	case TEESNP, TEETDX, TEESimSNP:
	case "":
		return &FieldError{"tee", "is missing; use snp, tdx or sim-snp"}
	default:
		return &FieldError{"tee", fmt.Sprintf("%q is not a TEE Cove knows; use snp, tdx or sim-snp", s.TEE)}
	}
	if len(s.Inputs) == 0 {
		return &FieldError{"inputs", "is empty; a job needs at least one sealed input"}
	}
	seen := map[string]bool{}
	for i, in := range s.Inputs {
		field := fmt.Sprintf("inputs[%d]", i)
		if !nameRE.MatchString(in.Name) {
			return &FieldError{field + ".name", fmt.Sprintf("%q is not a valid input name (lower-case letters, digits, '.', '_', '-')", in.Name)}
		}
		if seen[in.Name] {
			return &FieldError{field + ".name", fmt.Sprintf("%q is used twice", in.Name)}
		}
		seen[in.Name] = true
		if in.Path == "" {
			return &FieldError{field + ".path", "is missing; name the sealed file (.cove)"}
		}
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return &FieldError{"command", "is missing; give the program to run and its arguments as a list"}
	}
	if !strings.HasPrefix(s.Command[0], "/") {
		return &FieldError{"command[0]", fmt.Sprintf("%q must be an absolute path inside the guest", s.Command[0])}
	}
	if s.Output.Recipient == "" {
		return &FieldError{"output.recipient", "is missing; give the age recipient (age1...) the output is sealed to"}
	}
	if _, err := age.ParseX25519Recipient(s.Output.Recipient); err != nil {
		return &FieldError{"output.recipient", fmt.Sprintf("%q is not an age X25519 recipient: %v", s.Output.Recipient, err)}
	}
	if !strings.HasPrefix(s.KBS.URL, "https://") {
		return &FieldError{"kbs.url", fmt.Sprintf("%q must be an https:// URL", s.KBS.URL)}
	}
	return nil
}

// Path resolves a path from the spec: ${VAR} references are expanded and a
// relative path is taken from the spec's folder. ${COVE_CACHE} defaults to
// Cove's cache folder (see package cachedir) when the variable is unset.
func (s *Spec) Path(p string) string {
	p = os.Expand(p, func(name string) string {
		if v, ok := os.LookupEnv(name); ok || name != "COVE_CACHE" {
			return v
		}
		return cachedir.Dir()
	})
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir, p)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var wholeNumberRE = regexp.MustCompile(`^[0-9]+$`)

// checkWholeNumber requires the scalar at path, when present, to be a
// decimal integer.
func checkWholeNumber(doc *yaml.Node, path []string) error {
	node := doc
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	for _, key := range path {
		if node.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				next = node.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		node = next
	}
	if node.Kind != yaml.ScalarNode || !wholeNumberRE.MatchString(node.Value) {
		return &FieldError{strings.Join(path, "."), fmt.Sprintf("is %q; write a whole number in decimal", node.Value)}
	}
	return nil
}
