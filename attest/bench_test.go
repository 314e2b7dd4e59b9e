package attest

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkVerifyAndCheckMilanReport measures VerifySNP and CheckSNP on
// case B05, a real Milan report under AMD's roots.
func BenchmarkVerifyAndCheckMilanReport(b *testing.B) {
	report, err := os.ReadFile(filepath.Join("testdata", "B05-milan-v2-report-reported-ne-current.bin"))
	if err != nil {
		b.Fatal(err)
	}
	vcek, err := os.ReadFile(filepath.Join("testdata", "B05-milan-vcek.der"))
	if err != nil {
		b.Fatal(err)
	}
	ev := &SNPEvidence{Report: report, CertChain: CertChain{VCEK: vcek}}
	opts := VerifyOptions{Now: evaluatedMid2025}
	claims, err := VerifySNP(ev, opts)
	if err != nil {
		b.Fatal(err)
	}
	ref := ReferenceValues{
		Measurements: [][48]byte{claims.Measurement},
		HostData:     [32]byte{1},
		ReportData:   claims.ReportData,
	}
	for b.Loop() {
		claims, err := VerifySNP(ev, opts)
		if err != nil {
			b.Fatal(err)
		}
		claims.HostData = ref.HostData // B05's HOST_DATA is all zero, never bound.
		if verdict := CheckSNP(claims, ref); !verdict.Allow {
			b.Fatal(verdict)
		}
	}
}
