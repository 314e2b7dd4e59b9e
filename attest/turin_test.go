package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify/trust"
)

// b01TCB is B01's REPORTED_TCB, COMMITTED_TCB, CURRENT_TCB and LAUNCH_TCB,
// decoded in the Turin layout.
var b01TCB = TCB{FMC: 0, BootLoader: 1, TEE: 0, SNP: 2, Microcode: 71}

// b01HWID is the hwID of B01's VCEK and the first 8 bytes of its CHIP_ID.
var b01HWID = []byte{0x3b, 0x42, 0x09, 0x2f, 0x69, 0xc6, 0x56, 0xd3}

// b01Evidence is case B01: a Turin v5 report, its VCEK and AMD's Turin
// ASK and ARK.
func b01Evidence(t *testing.T) *SNPEvidence {
	t.Helper()
	ask, ark := kdsChain(t, readTestdata(t, "B01-ask-ark-turin.pem"))
	return &SNPEvidence{
		Report:    readTestdata(t, "B01-turin-v5-report.bin"),
		CertChain: CertChain{VCEK: readTestdata(t, "B01-turin-vcek.der"), ASK: ask, ARK: ark},
	}
}

func TestVerifyTurinReportWithoutASKAndARK(t *testing.T) {
	ev := b01Evidence(t)
	ev.CertChain.ASK, ev.CertChain.ARK = nil, nil
	claims, err := VerifySNP(ev, VerifyOptions{Now: evaluatedB01})
	if err != nil {
		t.Fatalf("VerifySNP(B01 without ASK and ARK) = %v, expected valid with AMD's embedded Turin roots", err)
	}
	checkTCB(t, "ReportedTCB", claims.ReportedTCB, b01TCB)
}

func TestVerifyTurinRejectsTamperedReport(t *testing.T) {
	ev := b01Evidence(t)
	report, err := abi.ReportToProto(ev.Report)
	if err != nil {
		t.Fatal(err)
	}
	report.HostData[0] ^= 1
	if ev.Report, err = abi.ReportToAbiBytes(report); err != nil {
		t.Fatal(err)
	}
	_, err = VerifySNP(ev, VerifyOptions{Now: evaluatedB01})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(B01 with one HOST_DATA bit flipped) = %v, expected ErrNotGenuine", err)
	}
	if !strings.Contains(err.Error(), "report signature verification error") {
		t.Errorf("error %q does not say that the report signature failed", err)
	}
}

func TestVerifyTurinRejectsExpiredVCEK(t *testing.T) {
	ev := b01Evidence(t)
	vcek, err := x509.ParseCertificate(ev.CertChain.VCEK)
	if err != nil {
		t.Fatal(err)
	}
	_, err = VerifySNP(ev, VerifyOptions{Now: vcek.NotAfter.Add(time.Second)})
	if !errors.Is(err, ErrNotGenuine) {
		t.Fatalf("VerifySNP(B01 after the VCEK expired) = %v, expected ErrNotGenuine", err)
	}
	if want := "VCEK certificate expired on 2032-07-17T17:04:46Z"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestVerifyTurinRejectsUntrustedASKOrARK(t *testing.T) {
	genoaASK, genoaARK := kdsChain(t, trust.AskArkGenoaVcekBytes)
	tests := []struct {
		name string
		ask  []byte
		ark  []byte
		want string
	}{
		{"forged ASK with the Turin names", forgedTurinASK(t), nil,
			`the ASK certificate "SEV-Turin" is not signed by the ARK "ARK-Turin"`},
		{"Genoa ASK", genoaASK, nil, `the ASK certificate's issuer "ARK-Genoa" is not the ARK "ARK-Turin"`},
		{"Genoa ARK", nil, genoaARK, `the evidence's ARK "ARK-Genoa" is not a trusted Turin ARK`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := b01Evidence(t)
			if tt.ask != nil {
				ev.CertChain.ASK = tt.ask
			}
			if tt.ark != nil {
				ev.CertChain.ARK = tt.ark
			}
			_, err := VerifySNP(ev, VerifyOptions{Now: evaluatedB01})
			if !errors.Is(err, ErrNotGenuine) {
				t.Fatalf("VerifySNP = %v, expected ErrNotGenuine", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestCheckTurinReport(t *testing.T) {
	claims, err := VerifySNP(b01Evidence(t), VerifyOptions{Now: evaluatedB01})
	if err != nil {
		t.Fatal(err)
	}
	ref := ReferenceValues{
		Measurements: [][48]byte{claims.Measurement},
		HostData:     [32]byte{1},
		ReportData:   claims.ReportData,
		MinTCB:       b01TCB,
	}
	claims.HostData = ref.HostData // B01's HOST_DATA is all zero, never bound.
	if verdict := CheckSNP(claims, ref); !verdict.Allow {
		t.Fatalf("CheckSNP(B01) = %v, expected allow", verdict)
	}

	ref.MinTCB.FMC = 1
	checkFailedRules(t, CheckSNP(claims, ref), "tcb.fmc")
}

// forgedTurinASK returns an ASK with the subject and issuer of AMD's Turin
// ASK, signed by a fresh key instead of AMD's Turin ARK.
func forgedTurinASK(t *testing.T) []byte {
	t.Helper()
	askDER, arkDER := kdsChain(t, readTestdata(t, "B01-ask-ark-turin.pem"))
	realASK, err := x509.ParseCertificate(askDER)
	if err != nil {
		t.Fatal(err)
	}
	realARK, err := x509.ParseCertificate(arkDER)
	if err != nil {
		t.Fatal(err)
	}
	forgerKey := newRSAKey(t)
	forgerARK := &x509.Certificate{RawSubject: realARK.RawSubject, PublicKey: &forgerKey.PublicKey}
	template := caTemplate(realASK.Subject, 2)
	der, err := x509.CreateCertificate(rand.Reader, template, forgerARK, realASK.PublicKey, forgerKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// testOnlyTurinChain is a test-only Turin ARK and ASK that issue VCEKs with
// chosen extensions, so that a test can sign a report for each defect.
type testOnlyTurinChain struct {
	ark, ask *x509.Certificate
	askKey   *rsa.PrivateKey
}

func newTestOnlyTurinChain(t *testing.T) *testOnlyTurinChain {
	t.Helper()
	arkKey, askKey := newRSAKey(t), newRSAKey(t)
	arkName := pkix.Name{CommonName: "ARK-Turin", Organization: []string{"Cove " + TestOnlyRootMarker}}
	arkTemplate := caTemplate(arkName, 1)
	arkDER, err := x509.CreateCertificate(rand.Reader, arkTemplate, arkTemplate, &arkKey.PublicKey, arkKey)
	if err != nil {
		t.Fatal(err)
	}
	ark, err := x509.ParseCertificate(arkDER)
	if err != nil {
		t.Fatal(err)
	}
	askName := pkix.Name{CommonName: "SEV-Turin", Organization: []string{"Cove " + TestOnlyRootMarker}}
	askDER, err := x509.CreateCertificate(rand.Reader, caTemplate(askName, 2), ark, &askKey.PublicKey, arkKey)
	if err != nil {
		t.Fatal(err)
	}
	ask, err := x509.ParseCertificate(askDER)
	if err != nil {
		t.Fatal(err)
	}
	return &testOnlyTurinChain{ark: ark, ask: ask, askKey: askKey}
}

func (c *testOnlyTurinChain) roots(t *testing.T) *Roots {
	t.Helper()
	roots, err := NewTestOnlyRoots("Turin", c.ark, c.ask)
	if err != nil {
		t.Fatal(err)
	}
	return roots
}

// evidence issues a VCEK with exts and returns B01's report, with
// REPORTED_TCB and CHIP_ID replaced, signed by that VCEK.
func (c *testOnlyTurinChain) evidence(t *testing.T, exts []pkix.Extension, reported TCB, chipID [64]byte) *SNPEvidence {
	t.Helper()
	vcekKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:       big.NewInt(3),
		Subject:            pkix.Name{CommonName: "SEV-VCEK"},
		NotBefore:          time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:           time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		ExtraExtensions:    exts,
	}
	vcek, err := x509.CreateCertificate(rand.Reader, template, c.ask, &vcekKey.PublicKey, c.askKey)
	if err != nil {
		t.Fatal(err)
	}

	report, err := abi.ReportToProto(readTestdata(t, "B01-turin-v5-report.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if report.ReportedTcb, err = EncodeTCB("Turin", reported); err != nil {
		t.Fatal(err)
	}
	report.ChipId = chipID[:]
	raw, err := abi.ReportToAbiBytes(report)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum384(abi.SignedComponent(raw))
	r, s, err := ecdsa.Sign(rand.Reader, vcekKey, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(r, s, raw); err != nil {
		t.Fatal(err)
	}
	return &SNPEvidence{Report: raw, CertChain: CertChain{VCEK: vcek, ASK: c.ask.Raw, ARK: c.ark.Raw}}
}

// newTurinVCEKExtensions returns the AMD extensions of a Turin VCEK for tcb
// and hwID, in the order and encoding of B01's VCEK.
func newTurinVCEKExtensions(t *testing.T, tcb TCB, hwID []byte) []pkix.Extension {
	t.Helper()
	integer := func(v int) []byte {
		der, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	productName, err := asn1.MarshalWithParams("Turin", "ia5")
	if err != nil {
		t.Fatal(err)
	}
	return []pkix.Extension{
		{Id: oidAMDStructVersion, Value: integer(1)},
		{Id: oidAMDProductName, Value: productName},
		{Id: oidAMDFMCSPL, Value: integer(int(tcb.FMC))},
		{Id: oidAMDBootLoaderSPL, Value: integer(int(tcb.BootLoader))},
		{Id: oidAMDTEESPL, Value: integer(int(tcb.TEE))},
		{Id: oidAMDSNPSPL, Value: integer(int(tcb.SNP))},
		{Id: oidAMDSPL5, Value: integer(0)},
		{Id: oidAMDSPL6, Value: integer(0)},
		{Id: oidAMDSPL7, Value: integer(0)},
		{Id: oidAMDMicrocodeSPL, Value: integer(int(tcb.Microcode))},
		{Id: oidAMDHWID, Value: hwID},
	}
}

// b01ChipID is B01's CHIP_ID: the hwID followed by zeros.
func b01ChipID() [64]byte {
	var chipID [64]byte
	copy(chipID[:], b01HWID)
	return chipID
}

func TestVerifyTurinTestOnlyChain(t *testing.T) {
	chain := newTestOnlyTurinChain(t)
	ev := chain.evidence(t, newTurinVCEKExtensions(t, b01TCB, b01HWID), b01TCB, b01ChipID())

	claims, err := VerifySNP(ev, VerifyOptions{Now: evaluatedB01, InsecureTestOnlyRoots: chain.roots(t)})
	if err != nil {
		t.Fatalf("VerifySNP(test-only Turin chain) = %v, expected valid", err)
	}
	if !claims.TestOnlyRoot {
		t.Error("TestOnlyRoot = false for a report under a test-only Turin root")
	}
	checkTCB(t, "ReportedTCB", claims.ReportedTCB, b01TCB)

	_, err = VerifySNP(ev, VerifyOptions{Now: evaluatedB01})
	if !errors.Is(err, ErrTestOnlyRootNotTrusted) {
		t.Errorf("VerifySNP(test-only Turin chain without InsecureTestOnlyRoots) = %v, expected ErrTestOnlyRootNotTrusted", err)
	}
}

func TestVerifyTurinRejectsMismatchedVCEK(t *testing.T) {
	wrongHWID := []byte{0x3b, 0x42, 0x09, 0x2f, 0x69, 0xc6, 0x56, 0xd4}
	trailingChipID := b01ChipID()
	trailingChipID[8] = 1
	higherUcode, higherFMC := b01TCB, b01TCB
	higherUcode.Microcode = 72
	higherFMC.FMC = 1
	withoutFMC := newTurinVCEKExtensions(t, b01TCB, b01HWID)
	withoutFMC = append(withoutFMC[:2], withoutFMC[3:]...)
	nonzeroSPL5 := newTurinVCEKExtensions(t, b01TCB, b01HWID)
	nonzeroSPL5[6].Value = []byte{0x02, 0x01, 0x01}

	tests := []struct {
		name    string
		exts    []pkix.Extension
		chipID  [64]byte
		wantErr error
		want    string
	}{
		{"VCEK microcode SPL above the report's", newTurinVCEKExtensions(t, higherUcode, b01HWID), b01ChipID(),
			ErrNotGenuine, "the VCEK certificate is issued for TCB fmc=0 bl=1 tee=0 snp=2 ucode=72"},
		{"VCEK FMC SPL above the report's", newTurinVCEKExtensions(t, higherFMC, b01HWID), b01ChipID(),
			ErrNotGenuine, "the VCEK certificate is issued for TCB fmc=1 bl=1 tee=0 snp=2 ucode=71"},
		{"VCEK with nonzero spl5", nonzeroSPL5, b01ChipID(),
			ErrNotGenuine, "spl5 extension is 1"},
		{"wrong hwID", newTurinVCEKExtensions(t, b01TCB, wrongHWID), b01ChipID(),
			ErrNotGenuine, "is not the VCEK certificate's hwID 3b42092f69c656d4"},
		{"CHIP_ID not zero after the hwID", newTurinVCEKExtensions(t, b01TCB, b01HWID), trailingChipID,
			ErrNotGenuine, "is not the VCEK certificate's hwID 3b42092f69c656d3 followed by zeros"},
		{"64-byte hwID", newTurinVCEKExtensions(t, b01TCB, trailingChipID[:]), trailingChipID,
			ErrInvalidEvidence, "hwID extension is 64 bytes, expected 8"},
		{"VCEK without fmcSPL", withoutFMC, b01ChipID(),
			ErrInvalidEvidence, "no fmcSPL extension (1.3.6.1.4.1.3704.1.3.9)"},
	}
	chain := newTestOnlyTurinChain(t)
	opts := VerifyOptions{Now: evaluatedB01, InsecureTestOnlyRoots: chain.roots(t)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := chain.evidence(t, tt.exts, b01TCB, tt.chipID)
			_, err := VerifySNP(ev, opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifySNP = %v, expected %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// caTemplate returns a template for a CA certificate signed with RSA-PSS and
// SHA-384, as AMD signs its ARK and ASK.
func caTemplate(subject pkix.Name, serial int64) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               subject,
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		SignatureAlgorithm:    x509.SHA384WithRSAPSS,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}
