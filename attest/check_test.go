package attest

import (
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
)

// acceptedClaims returns hand-made claims and reference values that accept them.
func acceptedClaims() (*SNPClaims, ReferenceValues) {
	tcb := TCB{BootLoader: 3, SNP: 8, Microcode: 115}
	claims := &SNPClaims{
		Measurement:  [48]byte{1},
		HostData:     [32]byte{2},
		ReportData:   [64]byte{3},
		ReportedTCB:  tcb,
		CommittedTCB: tcb,
		CurrentTCB:   tcb,
	}
	ref := ReferenceValues{
		Measurements: [][48]byte{{9}, {1}},
		HostData:     [32]byte{2},
		ReportData:   [64]byte{3},
		MinTCB:       tcb,
	}
	return claims, ref
}

func TestCheckAcceptsSecondMeasurement(t *testing.T) {
	claims, ref := acceptedClaims()
	if v := CheckSNP(claims, ref); !v.Allow || v.String() != "allow" {
		t.Errorf("CheckSNP = %v, expected allow", v)
	}
}

func TestCheckRequiresReferenceValues(t *testing.T) {
	claims, _ := acceptedClaims()
	v := CheckSNP(claims, ReferenceValues{})
	checkFailedRules(t, v, "measurement", "host_data", "report_data")
	if !strings.HasPrefix(v.String(), "deny: measurement: ") {
		t.Errorf("Verdict.String() = %q, expected it to start with the first failed rule", v)
	}
}

func TestCheckNilClaims(t *testing.T) {
	_, ref := acceptedClaims()
	checkFailedRules(t, CheckSNP(nil, ref), "claims")
}

func TestCheckTCBOrder(t *testing.T) {
	claims, ref := acceptedClaims()
	claims.CommittedTCB.Microcode = 114 // below REPORTED_TCB
	checkFailedRules(t, CheckSNP(claims, ref), "tcb.order")

	claims, ref = acceptedClaims()
	claims.CurrentTCB.SNP = 7 // below COMMITTED_TCB
	checkFailedRules(t, CheckSNP(claims, ref), "tcb.order")
}

func TestCheckEveryTCBMinimum(t *testing.T) {
	claims, ref := acceptedClaims()
	ref.MinTCB = TCB{FMC: 1, BootLoader: 4, TEE: 1, SNP: 9, Microcode: 116}
	checkFailedRules(t, CheckSNP(claims, ref), "tcb.fmc", "tcb.boot_loader", "tcb.tee", "tcb.snp", "tcb.microcode")
}

func TestCheckVMPL(t *testing.T) {
	claims, ref := acceptedClaims()
	claims.VMPL = 1
	vmpl := uint32(0)
	ref.VMPL = &vmpl
	checkFailedRules(t, CheckSNP(claims, ref), "vmpl")
}

func TestCheckVLEKReport(t *testing.T) {
	claims, err := VerifySNP(b07Evidence(t), VerifyOptions{Now: evaluatedMid2025})
	if err != nil {
		t.Fatal(err)
	}
	vmpl := uint32(1)
	ref := ReferenceValues{
		Measurements: [][48]byte{claims.Measurement},
		HostData:     [32]byte{1},
		ReportData:   claims.ReportData,
		VMPL:         &vmpl,
	}
	// B07's HOST_DATA is all zero, which never counts as bound.
	checkFailedRules(t, CheckSNP(claims, ref), "host_data")

	claims.HostData = ref.HostData
	if v := CheckSNP(claims, ref); !v.Allow {
		t.Errorf("CheckSNP(B07 with HOST_DATA set) = %v, expected allow", v)
	}
}

func TestTurinTCBLayout(t *testing.T) {
	report, err := abi.ReportToProto(readTestdata(t, "B01-turin-v5-report.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTCB("Turin", report.GetReportedTcb())
	if err != nil {
		t.Fatal(err)
	}
	checkTCB(t, "Turin REPORTED_TCB", got, TCB{FMC: 0, BootLoader: 1, TEE: 0, SNP: 2, Microcode: 71})

	raw, err := EncodeTCB("Turin", got)
	if err != nil {
		t.Fatal(err)
	}
	if raw != report.GetReportedTcb() {
		t.Errorf("EncodeTCB(Turin) = %#016x, expected %#016x", raw, report.GetReportedTcb())
	}
}

func TestMilanTCBLayout(t *testing.T) {
	report, err := abi.ReportToProto(readTestdata(t, "B05-milan-v2-report-reported-ne-current.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTCB("Milan", report.GetCurrentTcb())
	if err != nil {
		t.Fatal(err)
	}
	checkTCB(t, "Milan CURRENT_TCB", got, TCB{BootLoader: 3, TEE: 0, SNP: 8, Microcode: 206})
	if _, err := EncodeTCB("Milan", TCB{FMC: 1}); err == nil {
		t.Error("EncodeTCB(Milan, FMC 1) succeeded, expected an error because Milan has no FMC SPL")
	}
}

func TestCheckReportConsistency(t *testing.T) {
	claims, err := VerifySNP(b05Evidence(t), VerifyOptions{Now: evaluatedMid2025})
	if err != nil {
		t.Fatal(err)
	}
	ref := ReferenceValues{
		Measurements: [][48]byte{claims.Measurement},
		HostData:     [32]byte{1},
		ReportData:   claims.ReportData,
	}
	claims.HostData = ref.HostData
	// A CHIP_ID other than the VCEK's HWID: only go-sev-guest's validate
	// package compares the two.
	claims.attestation.Report.ChipId = make([]byte, 64)
	claims.attestation.Report.ChipId[0] = 1

	verdict := CheckSNP(claims, ref)
	checkFailedRules(t, verdict, "report_consistency")
	if len(verdict.Failed) == 1 && !strings.Contains(verdict.Failed[0].Detail, "CHIP_ID") {
		t.Errorf("report_consistency detail %q does not name CHIP_ID", verdict.Failed[0].Detail)
	}
}
