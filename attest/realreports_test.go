package attest

import (
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/verify/trust"
)

// Evaluation times of the real reports: each certificate in the cases is
// valid then. B07's VLEK expires on 2025-12-10.
var (
	evaluatedMid2025        = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	evaluatedAfterB07Expiry = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	evaluatedB01            = time.Date(2025, 11, 19, 0, 0, 0, 0, time.UTC)
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kdsChain returns the DER ASK (or ASVK) and ARK of a PEM cert_chain as
// AMD's KDS serves it: intermediate first, then the root.
func kdsChain(t *testing.T, pemData []byte) (ask, ark []byte) {
	t.Helper()
	askBlock, rest := pem.Decode(pemData)
	arkBlock, _ := pem.Decode(rest)
	if askBlock == nil || arkBlock == nil {
		t.Fatal("cert_chain does not hold two PEM certificates")
	}
	return askBlock.Bytes, arkBlock.Bytes
}

// b05Evidence is case B05: a Milan v2 report whose CURRENT_TCB differs
// from REPORTED_TCB, with the VCEK for REPORTED_TCB and AMD's Milan chain.
func b05Evidence(t *testing.T) *SNPEvidence {
	ask, ark := kdsChain(t, trust.AskArkMilanVcekBytes)
	return &SNPEvidence{
		Report: readTestdata(t, "B05-milan-v2-report-reported-ne-current.bin"),
		CertChain: CertChain{
			VCEK: readTestdata(t, "B05-milan-vcek.der"),
			ASK:  ask,
			ARK:  ark,
		},
	}
}

// b07Evidence is case B07: an AWS Milan v3 report signed by a VLEK, with
// the ASVK and ARK.
func b07Evidence(t *testing.T) *SNPEvidence {
	asvk, ark := kdsChain(t, readTestdata(t, "B07-asvk-ark-milan.pem"))
	return &SNPEvidence{
		Report:    readTestdata(t, "B07-aws-vlek-v3-report.bin"),
		CertChain: CertChain{VLEK: readTestdata(t, "B07-aws-vlek.der"), ASK: asvk, ARK: ark},
	}
}

func TestVerifyMilanReportedTCBBelowCurrent(t *testing.T) {
	claims, err := VerifySNP(b05Evidence(t), VerifyOptions{Now: evaluatedMid2025})
	if err != nil {
		t.Fatalf("VerifySNP(B05) = %v, expected valid", err)
	}
	if claims.TestOnlyRoot {
		t.Error("TestOnlyRoot = true for a report signed under AMD's Milan root")
	}
	if claims.Product != "Milan" {
		t.Errorf("Product = %q, expected Milan", claims.Product)
	}
	if claims.SigningKey != VCEK {
		t.Errorf("SigningKey = %q, expected VCEK", claims.SigningKey)
	}
	if claims.Version != 2 {
		t.Errorf("Version = %d, expected 2", claims.Version)
	}
	wantReported := TCB{BootLoader: 3, TEE: 0, SNP: 8, Microcode: 115}
	wantCurrent := TCB{BootLoader: 3, TEE: 0, SNP: 8, Microcode: 206}
	checkTCB(t, "ReportedTCB", claims.ReportedTCB, wantReported)
	checkTCB(t, "CommittedTCB", claims.CommittedTCB, wantReported)
	checkTCB(t, "CurrentTCB", claims.CurrentTCB, wantCurrent)
	if !claims.EvaluatedAt.Equal(evaluatedMid2025) {
		t.Errorf("EvaluatedAt = %v, expected %v", claims.EvaluatedAt, evaluatedMid2025)
	}
}

func TestCheckMilanReportedTCBBelowCurrent(t *testing.T) {
	claims, err := VerifySNP(b05Evidence(t), VerifyOptions{Now: evaluatedMid2025})
	if err != nil {
		t.Fatal(err)
	}
	ref := ReferenceValues{
		Measurements: [][48]byte{claims.Measurement},
		HostData:     [32]byte{1},
		ReportData:   claims.ReportData,
		MinTCB:       TCB{BootLoader: 3, SNP: 8, Microcode: 115},
	}
	claims.HostData = ref.HostData // B05's HOST_DATA is all zero, never bound.
	verdict := CheckSNP(claims, ref)
	if !verdict.Allow {
		t.Fatalf("CheckSNP(B05) = %v, expected allow", verdict)
	}

	ref.MinTCB.Microcode = 116
	verdict = CheckSNP(claims, ref)
	checkFailedRules(t, verdict, "tcb.microcode")
}

func TestVerifyRejectsVCEKInVLEKSlot(t *testing.T) {
	ev := b05Evidence(t)
	ev.CertChain.VLEK, ev.CertChain.VCEK = ev.CertChain.VCEK, nil
	_, err := VerifySNP(ev, VerifyOptions{Now: evaluatedMid2025})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(VCEK-signed report with only a VLEK) = %v, expected ErrNotGenuine", err)
	}
	if !strings.Contains(err.Error(), "carries a VLEK certificate") {
		t.Errorf("error %q does not say that a VLEK was offered for a VCEK report", err)
	}
}

func TestVerifyVLEKReportBeforeExpiry(t *testing.T) {
	claims, err := VerifySNP(b07Evidence(t), VerifyOptions{Now: evaluatedMid2025})
	if err != nil {
		t.Fatalf("VerifySNP(B07 at 2025-06-01) = %v, expected valid", err)
	}
	if claims.SigningKey != VLEK {
		t.Errorf("SigningKey = %q, expected VLEK", claims.SigningKey)
	}
	if claims.ChipID != [64]byte{} {
		t.Errorf("ChipID = %x, expected all zero", claims.ChipID)
	}
	if claims.VMPL != 1 {
		t.Errorf("VMPL = %d, expected 1", claims.VMPL)
	}
	checkTCB(t, "ReportedTCB", claims.ReportedTCB, TCB{BootLoader: 4, SNP: 24, Microcode: 217})
	checkTCB(t, "CommittedTCB", claims.CommittedTCB, TCB{BootLoader: 4, SNP: 24, Microcode: 219})
	checkTCB(t, "CurrentTCB", claims.CurrentTCB, TCB{BootLoader: 4, SNP: 24, Microcode: 220})
}

func TestVerifyVLEKReportAfterExpiry(t *testing.T) {
	_, err := VerifySNP(b07Evidence(t), VerifyOptions{Now: evaluatedAfterB07Expiry})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(B07 at 2026-12-03) = %v, expected ErrNotGenuine", err)
	}
	for _, want := range []string{"VLEK certificate expired on 2025-12-10T22:14:21Z", "evaluation time 2026-12-03T00:00:00Z"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestVerifyRejectsVLEKInVCEKSlot(t *testing.T) {
	ev := b07Evidence(t)
	ev.CertChain.VCEK, ev.CertChain.VLEK = ev.CertChain.VLEK, nil
	_, err := VerifySNP(ev, VerifyOptions{Now: evaluatedMid2025})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(VLEK-signed report with a VCEK) = %v, expected ErrNotGenuine", err)
	}
	if !strings.Contains(err.Error(), "carries a VCEK certificate") {
		t.Errorf("error %q does not say that a VCEK was offered for a VLEK report", err)
	}
}

func TestVerifyTurinReport(t *testing.T) {
	var expected struct {
		Report struct {
			Measurement string `json:"measurement"`
			ChipID      string `json:"chip_id"`
		} `json:"report"`
	}
	if err := json.Unmarshal(readTestdata(t, "B01-expected.json"), &expected); err != nil {
		t.Fatal(err)
	}

	ask, ark := kdsChain(t, readTestdata(t, "B01-ask-ark-turin.pem"))
	ev := &SNPEvidence{
		Report:    readTestdata(t, "B01-turin-v5-report.bin"),
		CertChain: CertChain{VCEK: readTestdata(t, "B01-turin-vcek.der"), ASK: ask, ARK: ark},
	}
	claims, err := VerifySNP(ev, VerifyOptions{Now: evaluatedB01})
	if err != nil {
		t.Fatalf("VerifySNP(B01) = %v, expected valid", err)
	}

	if claims.Product != "Turin" {
		t.Errorf("Product = %q, expected Turin (CPUID family 0x1A model 0x02)", claims.Product)
	}
	if claims.Version != 5 {
		t.Errorf("Version = %d, expected 5", claims.Version)
	}
	if claims.SigningKey != VCEK {
		t.Errorf("SigningKey = %q, expected VCEK", claims.SigningKey)
	}
	if claims.TestOnlyRoot {
		t.Error("TestOnlyRoot = true for a report signed under AMD's Turin root")
	}
	if got := hex.EncodeToString(claims.Measurement[:]); got != expected.Report.Measurement {
		t.Errorf("Measurement = %s, expected %s", got, expected.Report.Measurement)
	}
	if got := hex.EncodeToString(claims.ChipID[:]); got != expected.Report.ChipID {
		t.Errorf("ChipID = %s, expected %s", got, expected.Report.ChipID)
	}
	if claims.Policy.Raw != 0x30000 {
		t.Errorf("Policy.Raw = %#x, expected 0x30000", claims.Policy.Raw)
	}

	if claims.ReportedTCB.Raw != 0x4700000002000100 {
		t.Errorf("ReportedTCB.Raw = %#016x, expected 0x4700000002000100", claims.ReportedTCB.Raw)
	}
	turinTCB := TCB{FMC: 0, BootLoader: 1, TEE: 0, SNP: 2, Microcode: 71}
	checkTCB(t, "ReportedTCB", claims.ReportedTCB, turinTCB)
	checkTCB(t, "CommittedTCB", claims.CommittedTCB, turinTCB)
	checkTCB(t, "CurrentTCB", claims.CurrentTCB, turinTCB)
	checkTCB(t, "LaunchTCB", claims.LaunchTCB, turinTCB)

	if !claims.EvaluatedAt.Equal(evaluatedB01) {
		t.Errorf("EvaluatedAt = %v, expected %v", claims.EvaluatedAt, evaluatedB01)
	}
}

func checkTCB(t *testing.T, name string, got, want TCB) {
	t.Helper()
	got.Raw, want.Raw = 0, 0
	if got != want {
		t.Errorf("%s = %v, expected %v", name, got, want)
	}
}

// checkFailedRules checks that the verdict denies with exactly the named
// rules, in order.
func checkFailedRules(t *testing.T, v Verdict, rules ...string) {
	t.Helper()
	if v.Allow {
		t.Errorf("verdict allows, expected failed rules %v", rules)
	}
	var got []string
	for _, f := range v.Failed {
		got = append(got, f.Rule)
	}
	if strings.Join(got, ",") != strings.Join(rules, ",") {
		t.Errorf("failed rules = %v, expected %v (verdict %v)", got, rules, v)
	}
}
