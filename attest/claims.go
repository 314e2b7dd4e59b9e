package attest

import (
	"time"

	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// SigningKey names the kind of AMD key that signed a report.
type SigningKey string

const (
	// VCEK is the versioned chip endorsement key, unique to a chip and its
	// reported TCB (SIGNING_KEY 0).
	VCEK SigningKey = "VCEK"
	// VLEK is the versioned loaded endorsement key that AMD issues to a
	// cloud provider (SIGNING_KEY 1).
	VLEK SigningKey = "VLEK"
)

// SNPClaims are the fields of a genuine SEV-SNP report, as [VerifySNP]
// returns them.
type SNPClaims struct {
	// Version is the report format version (2 to 5).
	Version uint32
	// Product is the product line: "Milan", "Genoa" or "Turin". It comes
	// from the signed CPUID fields in report versions 3 and later, and from
	// the VCEK or VLEK certificate in version 2.
	Product string
	// SigningKey is the kind of key that signed the report.
	SigningKey SigningKey
	// Measurement is the launch digest (MEASUREMENT).
	Measurement [48]byte
	// HostData is HOST_DATA, the 32 bytes the host fixed at launch. Cove
	// puts the job digest there.
	HostData [32]byte
	// ReportData is REPORT_DATA, the 64 bytes the guest passed when it
	// requested the report.
	ReportData [64]byte
	// ChipID is CHIP_ID. It is all zero when the report is signed by a VLEK
	// or when the host masks the chip id.
	ChipID [64]byte
	// Policy is the guest policy the guest was launched with.
	Policy Policy
	// GuestSVN is the guest's security version number (GUEST_SVN).
	GuestSVN uint32
	// VMPL is the virtual machine privilege level that requested the report.
	VMPL uint32
	// ReportedTCB is REPORTED_TCB, the TCB the signing key is issued for.
	ReportedTCB TCB
	// CommittedTCB is COMMITTED_TCB, the TCB the firmware cannot roll back below.
	CommittedTCB TCB
	// CurrentTCB is CURRENT_TCB, the TCB that runs now.
	CurrentTCB TCB
	// LaunchTCB is LAUNCH_TCB, the CURRENT_TCB when the guest was launched.
	LaunchTCB TCB
	// TestOnlyRoot is true when the signing key chains to a root from
	// VerifyOptions.InsecureTestOnlyRoots instead of to AMD.
	TestOnlyRoot bool
	// EvaluatedAt is the time at which the certificates were checked.
	EvaluatedAt time.Time

	// attestation is the verified report and endorsement key certificate,
	// kept for the consistency checks of go-sev-guest's validate package.
	attestation *spb.Attestation
}

// Policy is the guest policy of a report (the POLICY field).
type Policy struct {
	// Raw is the 64-bit policy as stored in the report.
	Raw uint64
	// ABIMajor and ABIMinor are the minimum firmware ABI version the guest requires.
	ABIMajor, ABIMinor uint8
	// SMT is true when simultaneous multithreading is allowed.
	SMT bool
	// MigrationAgent is true when a migration agent may be associated with the guest.
	MigrationAgent bool
	// Debug is true when the host may read and write the guest's memory
	// with the SNP debug commands, so the guest is not confidential.
	Debug bool
	// SingleSocket is true when the guest may run on one socket only.
	SingleSocket bool
}
