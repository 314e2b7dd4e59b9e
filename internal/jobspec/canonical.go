package jobspec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"cove.dev/cove/internal/canonjson"
)

// Canonical is the form of a job that the job digest covers. It names
// launch artifacts by SHA-256 and inputs by their KBS resource, so it
// carries everything that decides what the guest runs, on whose data and
// with which broker, and nothing that depends on the machine, such as paths.
type Canonical struct {
	CoveJob int              `json:"cove_job"`
	Name    string           `json:"name"`
	TEE     string           `json:"tee"`
	Guest   CanonicalGuest   `json:"guest"`
	Inputs  []CanonicalInput `json:"inputs"`
	Command []string         `json:"command"`
	Output  Output           `json:"output"`
	KBSURL  string           `json:"kbs_url"`
	// KBSCASHA256 is the SHA-256 of the broker's CA certificate file, so a
	// host cannot point the guest at a broker of its own. Empty means the
	// guest trusts the system roots.
	KBSCASHA256 string `json:"kbs_ca_sha256,omitempty"`
}

// CanonicalGuest is the guest image by digest, and the VM's shape.
type CanonicalGuest struct {
	KernelSHA256   string `json:"kernel_sha256"`
	InitrdSHA256   string `json:"initrd_sha256"`
	FirmwareSHA256 string `json:"firmware_sha256"`
	Cmdline        string `json:"cmdline"`
	VCPUs          int    `json:"vcpus"`
	MemoryMiB      int    `json:"memory_mib"`
}

// CanonicalInput is one input by name and the KBS resource of its key.
type CanonicalInput struct {
	Name     string `json:"name"`
	Resource string `json:"resource"`
}

// Canonical hashes the launch artifacts and builds the canonical form.
// resources gives the KBS resource of each input, in order, as read from
// the sealed files' headers.
func (s *Spec) Canonical(resources []string) (*Canonical, error) {
	if len(resources) != len(s.Inputs) {
		return nil, fmt.Errorf("jobspec: %d resources for %d inputs", len(resources), len(s.Inputs))
	}
	c := &Canonical{
		CoveJob: Version,
		Name:    s.Name,
		TEE:     s.TEE,
		Command: s.Command,
		Output:  s.Output,
		KBSURL:  s.KBS.URL,
	}
	for field, p := range map[string]struct {
		path string
		dst  *string
	}{
		"guest.kernel":   {s.Guest.Kernel, &c.Guest.KernelSHA256},
		"guest.initrd":   {s.Guest.Initrd, &c.Guest.InitrdSHA256},
		"guest.firmware": {s.Guest.Firmware, &c.Guest.FirmwareSHA256},
	} {
		sum, err := fileSHA256(s.Path(p.path))
		if err != nil {
			return nil, &FieldError{field, err.Error()}
		}
		*p.dst = sum
	}
	if s.KBS.CAFile != "" {
		sum, err := fileSHA256(s.Path(s.KBS.CAFile))
		if err != nil {
			return nil, &FieldError{"kbs.ca_file", err.Error()}
		}
		c.KBSCASHA256 = sum
	}
	c.Guest.Cmdline = s.Guest.Cmdline
	c.Guest.VCPUs = s.Guest.VCPUs
	c.Guest.MemoryMiB = s.Guest.MemoryMiB
	for i, in := range s.Inputs {
		c.Inputs = append(c.Inputs, CanonicalInput{Name: in.Name, Resource: resources[i]})
	}
	return c, nil
}

// Bytes returns the canonical JSON of c.
func (c *Canonical) Bytes() ([]byte, error) {
	return canonjson.Marshal(c)
}

// Digest returns the job digest: SHA-256 over the canonical JSON bytes.
func Digest(canonical []byte) [32]byte {
	return sha256.Sum256(canonical)
}

// DigestHex returns the job digest of canonical as 64 lower-case hex
// characters.
func DigestHex(canonical []byte) string {
	d := Digest(canonical)
	return hex.EncodeToString(d[:])
}

// ParseCanonical decodes canonical JSON bytes, as the guest does with the
// manifest after checking their digest.
func ParseCanonical(b []byte) (*Canonical, error) {
	var c Canonical
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("invalid canonical job: %w", err)
	}
	if c.CoveJob != Version {
		return nil, fmt.Errorf("canonical job version %d; this Cove reads %d", c.CoveJob, Version)
	}
	return &c, nil
}
