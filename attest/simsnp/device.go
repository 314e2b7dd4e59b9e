package simsnp

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"

	"cove.dev/cove/attest"
	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// Guest policy bits (the POLICY field of the SEV-SNP firmware ABI).
const (
	// PolicySMT allows simultaneous multithreading.
	PolicySMT uint64 = 1 << 16
	// policyReserved is bit 17, which the firmware requires to be 1.
	policyReserved uint64 = 1 << 17
	// PolicyMigrationAgent allows a migration agent.
	PolicyMigrationAgent uint64 = 1 << 18
	// PolicyDebug allows the host to debug the guest, so the guest is not
	// confidential.
	PolicyDebug uint64 = 1 << 19

	// DefaultPolicy allows SMT and nothing else: no debugging, no
	// migration agent, minimum ABI 0.0.
	DefaultPolicy = PolicySMT | policyReserved
)

// Firmware version and platform that sim-snp reports.
const (
	firmwareMajor, firmwareMinor, firmwareBuild = 1, 55, 21
	// platformSMTEnabled is PLATFORM_INFO bit 0.
	platformSMTEnabled = 1
)

// LaunchParams are the values that a guest's launch fixes and that every
// report of the guest carries.
type LaunchParams struct {
	// Measurement is the launch digest reported as MEASUREMENT.
	Measurement [48]byte
	// HostData is reported as HOST_DATA. Cove's launcher puts the job
	// digest there.
	HostData [32]byte
	// Policy is the guest policy. Zero means DefaultPolicy. Any other
	// value must set bit 17, as the firmware requires.
	Policy uint64
	// TCB is reported as REPORTED_TCB, COMMITTED_TCB, CURRENT_TCB and
	// LAUNCH_TCB. Its FMC and Raw must be zero. Zero means DefaultTCB.
	TCB attest.TCB
	// GuestSVN is reported as GUEST_SVN.
	GuestSVN uint32
	// VMPL is the privilege level reported as VMPL, 0 to 3.
	VMPL uint32
	// FamilyID and ImageID are reported as FAMILY_ID and IMAGE_ID.
	FamilyID, ImageID [16]byte
}

// Device is one guest's view of the sim-snp firmware. It is safe for
// concurrent use.
type Device struct {
	chain    *Chain
	vcek     *x509.Certificate
	params   LaunchParams
	tcb      uint64
	reportID [32]byte
}

// NewDevice returns a device that reports the launch parameters p and
// signs with chain's VCEK. When p.TCB differs from chain.TCB, it issues a
// VCEK certificate for p.TCB.
func NewDevice(chain *Chain, p LaunchParams) (*Device, error) {
	if chain == nil {
		return nil, errors.New("sim-snp device needs a chain")
	}
	if p.Policy == 0 {
		p.Policy = DefaultPolicy
	}
	if _, err := abi.ParseSnpPolicy(p.Policy); err != nil {
		return nil, fmt.Errorf("invalid guest policy %#x: %w", p.Policy, err)
	}
	if p.TCB == (attest.TCB{}) {
		p.TCB = DefaultTCB
	}
	if p.TCB.Raw != 0 {
		return nil, errors.New("LaunchParams.TCB.Raw must be zero; set the named SPLs instead")
	}
	tcb, err := attest.EncodeTCB(ProductLine, p.TCB)
	if err != nil {
		return nil, err
	}
	if p.VMPL > 3 {
		return nil, fmt.Errorf("VMPL is %d, expected 0 to 3", p.VMPL)
	}
	vcek, err := chain.vcekFor(p.TCB)
	if err != nil {
		return nil, err
	}

	d := &Device{chain: chain, vcek: vcek, params: p, tcb: tcb}
	if _, err := rand.Read(d.reportID[:]); err != nil {
		return nil, err
	}
	return d, nil
}

// newReport returns the device's report with reportData, unsigned.
func (d *Device) newReport(reportData [64]byte) *spb.Report {
	// REPORT_ID_MA is all ones when the guest has no migration agent.
	reportIDMA := make([]byte, abi.ReportIDMASize)
	for i := range reportIDMA {
		reportIDMA[i] = 0xff
	}
	p := d.params
	return &spb.Report{
		Version:         abi.ReportVersion3,
		GuestSvn:        p.GuestSVN,
		Policy:          p.Policy,
		FamilyId:        p.FamilyID[:],
		ImageId:         p.ImageID[:],
		Vmpl:            p.VMPL,
		SignatureAlgo:   abi.SignEcdsaP384Sha384,
		CurrentTcb:      d.tcb,
		PlatformInfo:    platformSMTEnabled,
		SignerInfo:      abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VcekReportSigner}),
		ReportData:      reportData[:],
		Measurement:     p.Measurement[:],
		HostData:        p.HostData[:],
		IdKeyDigest:     make([]byte, abi.IDKeyDigestSize),
		AuthorKeyDigest: make([]byte, abi.AuthorKeyDigestSize),
		ReportId:        d.reportID[:],
		ReportIdMa:      reportIDMA,
		ReportedTcb:     d.tcb,
		Cpuid1EaxFms:    abi.MaskedCpuid1EaxFromSevProduct(abi.DefaultSevProduct()),
		ChipId:          d.chain.ChipID[:],
		CommittedTcb:    d.tcb,
		CurrentBuild:    firmwareBuild,
		CurrentMinor:    firmwareMinor,
		CurrentMajor:    firmwareMajor,
		CommittedBuild:  firmwareBuild,
		CommittedMinor:  firmwareMinor,
		CommittedMajor:  firmwareMajor,
		LaunchTcb:       d.tcb,
		Signature:       make([]byte, abi.SignatureSize),
	}
}

// Report returns evidence with a version 3 SEV-SNP attestation report that
// carries reportData as REPORT_DATA, signed with the test-only VCEK over
// the report's signed component, and the VCEK, ASK and ARK certificates.
func (d *Device) Report(reportData [64]byte) (*attest.SNPEvidence, error) {
	raw, err := abi.ReportToAbiBytes(d.newReport(reportData))
	if err != nil {
		return nil, fmt.Errorf("encoding the sim-snp report: %w", err)
	}

	digest := sha512.Sum384(abi.SignedComponent(raw))
	r, s, err := ecdsa.Sign(rand.Reader, d.chain.vcekKey, digest[:])
	if err != nil {
		return nil, fmt.Errorf("signing the sim-snp report: %w", err)
	}
	if err := abi.SetSignature(r, s, raw); err != nil {
		return nil, fmt.Errorf("signing the sim-snp report: %w", err)
	}

	return &attest.SNPEvidence{
		Report: raw,
		CertChain: attest.CertChain{
			VCEK: d.vcek.Raw,
			ASK:  d.chain.ASK.Raw,
			ARK:  d.chain.ARK.Raw,
		},
	}, nil
}
