package attest

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestVerifyWithoutASKAndARKInEvidence(t *testing.T) {
	ev := b05Evidence(t)
	ev.CertChain.ASK, ev.CertChain.ARK = nil, nil
	if _, err := VerifySNP(ev, VerifyOptions{Now: evaluatedMid2025}); err != nil {
		t.Errorf("VerifySNP(B05 without ASK and ARK) = %v, expected valid with the embedded AMD roots", err)
	}
}

func TestVerifyRejectsAMDRootsAsTestOnly(t *testing.T) {
	amd, err := AMDRoots()
	if err != nil {
		t.Fatal(err)
	}
	_, err = VerifySNP(b05Evidence(t), VerifyOptions{Now: evaluatedMid2025, InsecureTestOnlyRoots: amd})
	if err == nil || !strings.Contains(err.Error(), "must come from NewTestOnlyRoots") {
		t.Errorf("VerifySNP(AMD roots as test-only roots) = %v, expected an error", err)
	}
}

func TestVerifyRejectsWrongVCEK(t *testing.T) {
	// B07's VLEK certificate has the right chain but the wrong key and
	// kind for B05's report.
	ev := b05Evidence(t)
	ev.CertChain.VCEK = readTestdata(t, "B07-aws-vlek.der")
	_, err := VerifySNP(ev, VerifyOptions{Now: evaluatedMid2025})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(B05 with the VLEK as VCEK) = %v, expected ErrNotGenuine", err)
	}
	if !strings.Contains(err.Error(), `common name "SEV-VLEK"`) {
		t.Errorf("error %q does not name the certificate's kind", err)
	}
}

func TestVerifyRejectsTamperedReport(t *testing.T) {
	ev := b05Evidence(t)
	ev.Report = append([]byte(nil), ev.Report...)
	ev.Report[0xC0] ^= 1 // first byte of HOST_DATA
	_, err := VerifySNP(ev, VerifyOptions{Now: evaluatedMid2025})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(tampered B05) = %v, expected ErrNotGenuine", err)
	}
}

func TestVerifyRejectsBeforeVCEKValidity(t *testing.T) {
	ev := b05Evidence(t)
	cert, err := x509.ParseCertificate(ev.CertChain.VCEK)
	if err != nil {
		t.Fatal(err)
	}
	_, err = VerifySNP(ev, VerifyOptions{Now: cert.NotBefore.Add(-1)})
	if !errors.Is(err, ErrNotGenuine) || !strings.Contains(err.Error(), "not valid before 2023-01-24T17:58:26Z") {
		t.Errorf("VerifySNP(before the VCEK's validity) = %v, expected ErrNotGenuine naming its start", err)
	}
}

func TestVerifyRejectsNilEvidence(t *testing.T) {
	if _, err := VerifySNP(nil, VerifyOptions{}); !errors.Is(err, ErrInvalidEvidence) {
		t.Errorf("VerifySNP(nil) = %v, expected ErrInvalidEvidence", err)
	}
}

func TestNewTestOnlyRootsRejectsUnrelatedASK(t *testing.T) {
	asvk, ark := kdsChain(t, readTestdata(t, "B07-asvk-ark-milan.pem"))
	turinASK, _ := kdsChain(t, readTestdata(t, "B01-ask-ark-turin.pem"))
	arkCert, err := x509.ParseCertificate(ark)
	if err != nil {
		t.Fatal(err)
	}
	askCert, err := x509.ParseCertificate(turinASK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTestOnlyRoots("Milan", arkCert, askCert); err == nil {
		t.Error("NewTestOnlyRoots(Milan ARK, Turin ASK) succeeded, expected an error")
	}
	asvkCert, err := x509.ParseCertificate(asvk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTestOnlyRoots("Rome", arkCert, asvkCert); err == nil {
		t.Error("NewTestOnlyRoots(Rome) succeeded, expected an error for an unknown product line")
	}
}
