// Package launcher runs a Cove job. It prepares the launch from a job spec
// and boots the guest. For sim-snp jobs it also plays the software SEV-SNP
// device. It streams the sealed inputs in and the sealed output out, and
// writes the output and the guest's transcript next to the job.
package launcher

import (
	"encoding/hex"
	"fmt"
	"os"

	"cove.dev/cove/hypervisor"
	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/sealed"
	"cove.dev/cove/measurements"
)

// Plan is a job ready to launch: its canonical form, digest and the VM
// configuration, before any VM exists.
type Plan struct {
	Spec      *jobspec.Spec
	Canonical []byte
	Digest    [32]byte
	// Measurement is the SEV-SNP launch digest the guest's reports carry,
	// computed from the job's firmware, kernel, initrd, command line and
	// vCPU count.
	Measurement [48]byte
	Inputs      []PlannedInput
	VM          hypervisor.VMConfig
}

// PlannedInput is one sealed input with its header read.
type PlannedInput struct {
	Name   string
	Path   string
	Size   int64
	Header sealed.Header
}

// VCPUSignature is the CPUID leaf 1 EAX of the vCPU model the measurement
// assumes: QEMU's EPYC-v4.
const VCPUSignature = 0x00800F12

// GuestFeatures is the VMSA SEV_FEATURES the measurement assumes: SNP
// active and nothing else, the default of QEMU 9.1+ on Linux 6.10+ hosts.
const GuestFeatures = 0x1

// Prepare reads the spec's sealed inputs' headers, computes the job digest
// and the launch measurement, and builds the VM configuration.
func Prepare(spec *jobspec.Spec) (*Plan, error) {
	p := &Plan{Spec: spec}
	var resources []string
	for i, in := range spec.Inputs {
		path := spec.Path(in.Path)
		h, size, err := readSealedHeader(path)
		if err != nil {
			return nil, &jobspec.FieldError{Field: fmt.Sprintf("inputs[%d].path", i), Msg: err.Error()}
		}
		p.Inputs = append(p.Inputs, PlannedInput{Name: in.Name, Path: path, Size: size, Header: h})
		resources = append(resources, h.Resource)
	}
	c, err := spec.Canonical(resources)
	if err != nil {
		return nil, err
	}
	p.Canonical, err = c.Bytes()
	if err != nil {
		return nil, err
	}
	p.Digest = jobspec.Digest(p.Canonical)

	g := spec.Guest
	p.Measurement, err = measurements.SNPLaunchDigestFiles(spec.Path(g.Firmware), spec.Path(g.Kernel),
		spec.Path(g.Initrd), g.Cmdline, g.VCPUs, VCPUSignature, GuestFeatures)
	if err != nil {
		return nil, fmt.Errorf("compute the launch measurement: %w", err)
	}

	p.VM = hypervisor.VMConfig{
		Kernel:    spec.Path(g.Kernel),
		Initrd:    spec.Path(g.Initrd),
		Cmdline:   g.Cmdline,
		Firmware:  spec.Path(g.Firmware),
		VCPUs:     g.VCPUs,
		MemoryMiB: g.MemoryMiB,
		TEE:       spec.TEE,
	}
	if spec.TEE == jobspec.TEESNP || spec.TEE == jobspec.TEESimSNP {
		p.VM.HostData = append([]byte(nil), p.Digest[:]...)
	}
	return p, nil
}

// DigestHex returns the job digest as hex.
func (p *Plan) DigestHex() string { return hex.EncodeToString(p.Digest[:]) }

// MeasurementHex returns the launch measurement as hex.
func (p *Plan) MeasurementHex() string { return hex.EncodeToString(p.Measurement[:]) }

func readSealedHeader(path string) (sealed.Header, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return sealed.Header{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return sealed.Header{}, 0, err
	}
	h, _, err := sealed.ReadHeader(f)
	if err != nil {
		return sealed.Header{}, 0, err
	}
	return h, st.Size(), nil
}
