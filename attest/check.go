package attest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/validate"
)

// ReferenceValues is the set of values that a policy expects of genuine SNP
// claims. The zero value accepts nothing, because Measurements, HostData and
// ReportData are required.
type ReferenceValues struct {
	// Measurements lists the acceptable MEASUREMENT values. The claims must
	// equal one of them in all 48 bytes. Required: an empty list fails the
	// "measurement" rule.
	Measurements [][48]byte
	// HostData is the expected HOST_DATA (for Cove, the job digest),
	// compared in all 32 bytes. Required: all zero fails the "host_data"
	// rule, because a guest launched without HOST_DATA reports all zeros,
	// so all-zero HOST_DATA never counts as bound.
	HostData [32]byte
	// ReportData is the expected REPORT_DATA, normally
	// [ReportData] of the session's runtime-data, compared in all 64 bytes.
	// Required: all zero fails the "report_data" rule.
	ReportData [64]byte
	// AllowDebug accepts a guest policy with the DEBUG bit set. When false,
	// such claims fail the "debug" rule.
	AllowDebug bool
	// AllowMigrationAgent accepts a guest policy with the MIGRATE_MA bit
	// set. When false, such claims fail the "migration_agent" rule.
	AllowMigrationAgent bool
	// MinTCB is the minimum of each SPL of REPORTED_TCB, with rules
	// "tcb.fmc", "tcb.boot_loader", "tcb.tee", "tcb.snp" and
	// "tcb.microcode". A zero SPL sets no minimum, and Raw is ignored.
	MinTCB TCB
	// MinGuestSVN is the minimum GUEST_SVN (rule "guest_svn"). Zero sets
	// no minimum.
	MinGuestSVN uint32
	// VMPL, when not nil, is the required VMPL (rule "vmpl"). Nil accepts
	// any VMPL.
	VMPL *uint32
	// AllowTestOnlyRoot accepts claims verified through
	// VerifyOptions.InsecureTestOnlyRoots. When false, such claims fail the
	// "test_only_root" rule, so a production policy rejects the software
	// SEV-SNP device even on a verifier that trusts its root.
	AllowTestOnlyRoot bool
}

// Verdict is the outcome of [CheckSNP]: Allow is true exactly when Failed
// is empty.
type Verdict struct {
	Allow  bool
	Failed []FailedRule
}

// FailedRule is one rule that the claims broke. Rule is a stable name
// (such as "measurement", "host_data", "report_data", "debug" or "tcb.snp"),
// and Detail describes the values that differed.
type FailedRule struct {
	Rule   string
	Detail string
}

// String formats the verdict as "allow" or as "deny: " and the failed rules.
func (v Verdict) String() string {
	if v.Allow {
		return "allow"
	}
	parts := make([]string, len(v.Failed))
	for i, f := range v.Failed {
		parts[i] = f.Rule + ": " + f.Detail
	}
	return "deny: " + strings.Join(parts, "; ")
}

// CheckSNP compares claims from [VerifySNP] with ref and returns a verdict
// that lists every failed rule, not only the first. All byte fields are
// compared in full.
//
// For claims returned by VerifySNP it also runs go-sev-guest's
// validate.SnpAttestation. That checks that the endorsement key certificate
// matches REPORTED_TCB and CHIP_ID, and that the committed firmware is not
// newer than the current one. A failure there is the rule
// "report_consistency". Claims of Turin VCEK-signed reports skip that rule,
// because go-sev-guest v0.15.0 cannot parse their VCEK. VerifySNP has
// already matched that VCEK to REPORTED_TCB and CHIP_ID.
func CheckSNP(claims *SNPClaims, ref ReferenceValues) Verdict {
	if claims == nil {
		return Verdict{Failed: []FailedRule{{Rule: "claims", Detail: "no claims to check"}}}
	}
	var failed []FailedRule
	fail := func(rule, format string, args ...any) {
		failed = append(failed, FailedRule{Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}

	switch {
	case len(ref.Measurements) == 0:
		fail("measurement", "the reference values list no measurement")
	case !slices.Contains(ref.Measurements, claims.Measurement):
		fail("measurement", "MEASUREMENT %x is not among the %d reference measurements",
			claims.Measurement, len(ref.Measurements))
	}

	switch {
	case ref.HostData == [32]byte{}:
		fail("host_data", "the reference HOST_DATA is all zero, which never counts as bound")
	case claims.HostData != ref.HostData:
		fail("host_data", "HOST_DATA is %x, expected %x", claims.HostData, ref.HostData)
	}

	switch {
	case ref.ReportData == [64]byte{}:
		fail("report_data", "the reference REPORT_DATA is all zero; expected the binding of the session's runtime-data")
	case claims.ReportData != ref.ReportData:
		fail("report_data", "REPORT_DATA is %x, expected %x (runtime-data mismatch)", claims.ReportData, ref.ReportData)
	}

	if claims.Policy.Debug && !ref.AllowDebug {
		fail("debug", "the guest policy %#x allows debugging, which the reference values forbid", claims.Policy.Raw)
	}
	if claims.Policy.MigrationAgent && !ref.AllowMigrationAgent {
		fail("migration_agent", "the guest policy %#x allows a migration agent, which the reference values forbid",
			claims.Policy.Raw)
	}

	got, min := claims.ReportedTCB.components(), ref.MinTCB.components()
	for i := range got {
		if got[i].value < min[i].value {
			fail(got[i].rule, "REPORTED_TCB has %d, below the minimum %d", got[i].value, min[i].value)
		}
	}
	if !claims.ReportedTCB.atMost(claims.CommittedTCB) || !claims.CommittedTCB.atMost(claims.CurrentTCB) {
		fail("tcb.order", "expected REPORTED_TCB <= COMMITTED_TCB <= CURRENT_TCB in every SPL, got reported %v, committed %v, current %v",
			claims.ReportedTCB, claims.CommittedTCB, claims.CurrentTCB)
	}

	if claims.GuestSVN < ref.MinGuestSVN {
		fail("guest_svn", "GUEST_SVN is %d, below the minimum %d", claims.GuestSVN, ref.MinGuestSVN)
	}
	if ref.VMPL != nil && claims.VMPL != *ref.VMPL {
		fail("vmpl", "the report was requested at VMPL %d, expected %d", claims.VMPL, *ref.VMPL)
	}
	if claims.TestOnlyRoot && !ref.AllowTestOnlyRoot {
		fail("test_only_root", "the evidence is signed by a test-only root, which the reference values do not allow")
	}

	if err := checkConsistency(claims); err != nil {
		fail("report_consistency", "%v", err)
	}
	return Verdict{Allow: len(failed) == 0, Failed: failed}
}

// checkConsistency runs validate.SnpAttestation with options that accept
// every policy bit and TCB, so that only the checks CheckSNP does not name
// itself can fail.
func checkConsistency(claims *SNPClaims) error {
	if claims.attestation == nil {
		return nil
	}
	opts := &validate.Options{
		GuestPolicy: abi.SnpPolicy{
			SMT:        true,
			MigrateMA:  true,
			Debug:      true,
			CXLAllowed: true,
		},
		PermitProvisionalFirmware: true,
	}
	return validate.SnpAttestation(claims.attestation, opts)
}
