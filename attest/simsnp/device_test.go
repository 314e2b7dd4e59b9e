package simsnp_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"cove.dev/cove/attest"
	"cove.dev/cove/attest/simsnp"
)

// sharedChain is one test-only chain for the whole package, because each
// new chain costs two RSA-4096 key generations.
var sharedChain = sync.OnceValues(simsnp.NewChain)

func testChain(t testing.TB) *simsnp.Chain {
	t.Helper()
	chain, err := sharedChain()
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

var (
	testMeasurement = [48]byte{0x6d, 0x28, 0x78, 47: 0x01}
	testHostData    = [32]byte{0xc0, 0x7e, 31: 0x02}
	testReportData  = [64]byte{0x30, 0xb7, 47: 0x03}
)

func testParams() simsnp.LaunchParams {
	return simsnp.LaunchParams{Measurement: testMeasurement, HostData: testHostData}
}

// matchingReference returns reference values that accept a report of
// testParams with testReportData.
func matchingReference() attest.ReferenceValues {
	return attest.ReferenceValues{
		Measurements:      [][48]byte{testMeasurement},
		HostData:          testHostData,
		ReportData:        testReportData,
		MinTCB:            simsnp.DefaultTCB,
		AllowTestOnlyRoot: true,
	}
}

func newReport(t testing.TB, chain *simsnp.Chain, p simsnp.LaunchParams, reportData [64]byte) *attest.SNPEvidence {
	t.Helper()
	device, err := simsnp.NewDevice(chain, p)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := device.Report(reportData)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func verifyTrusted(t testing.TB, chain *simsnp.Chain, ev *attest.SNPEvidence) *attest.SNPClaims {
	t.Helper()
	claims, err := attest.VerifySNP(ev, attest.VerifyOptions{InsecureTestOnlyRoots: chain.Roots()})
	if err != nil {
		t.Fatalf("VerifySNP(sim-snp report, test roots trusted) = %v, expected genuine", err)
	}
	return claims
}

func TestSimReportGenuineWithTestRoots(t *testing.T) {
	chain := testChain(t)
	claims := verifyTrusted(t, chain, newReport(t, chain, testParams(), testReportData))

	if !claims.TestOnlyRoot {
		t.Error("TestOnlyRoot = false, expected true for a sim-snp report")
	}
	if claims.Measurement != testMeasurement {
		t.Errorf("Measurement = %x, expected %x", claims.Measurement, testMeasurement)
	}
	if claims.HostData != testHostData {
		t.Errorf("HostData = %x, expected %x", claims.HostData, testHostData)
	}
	if claims.ReportData != testReportData {
		t.Errorf("ReportData = %x, expected %x", claims.ReportData, testReportData)
	}
	if claims.ChipID != chain.ChipID {
		t.Errorf("ChipID = %x, expected the chain's %x", claims.ChipID, chain.ChipID)
	}
	if claims.Policy.Debug {
		t.Error("Policy.Debug = true, expected debugging off by default")
	}
	if !claims.Policy.SMT {
		t.Error("Policy.SMT = false, expected SMT allowed by default")
	}
	if claims.Product != simsnp.ProductLine {
		t.Errorf("Product = %q, expected %q", claims.Product, simsnp.ProductLine)
	}
	if claims.SigningKey != attest.VCEK {
		t.Errorf("SigningKey = %q, expected VCEK", claims.SigningKey)
	}
	if claims.Version != 3 {
		t.Errorf("Version = %d, expected 3", claims.Version)
	}
	reported := claims.ReportedTCB
	reported.Raw = 0
	if reported != simsnp.DefaultTCB {
		t.Errorf("ReportedTCB = %v, expected %v", reported, simsnp.DefaultTCB)
	}
}

func TestSimReportAcceptedByMatchingReference(t *testing.T) {
	chain := testChain(t)
	claims := verifyTrusted(t, chain, newReport(t, chain, testParams(), testReportData))
	if verdict := attest.CheckSNP(claims, matchingReference()); !verdict.Allow {
		t.Errorf("CheckSNP = %v, expected allow", verdict)
	}
}

func TestSimReportRejectedWithoutTestRoots(t *testing.T) {
	chain := testChain(t)
	ev := newReport(t, chain, testParams(), testReportData)

	_, err := attest.VerifySNP(ev, attest.VerifyOptions{})
	if !errors.Is(err, attest.ErrTestOnlyRootNotTrusted) {
		t.Errorf("VerifySNP(sim-snp report, no test roots) = %v, expected ErrTestOnlyRootNotTrusted", err)
	}
	if !errors.Is(err, attest.ErrNotGenuine) {
		t.Errorf("VerifySNP(sim-snp report, no test roots) = %v, expected ErrNotGenuine", err)
	}
	if err != nil && !strings.Contains(err.Error(), "InsecureTestOnlyRoots") {
		t.Errorf("error %q does not name the option that trusts test-only roots", err)
	}
}

func TestSimReportRejectedWithOtherTestRoots(t *testing.T) {
	chain := testChain(t)
	simsnp.UseSmallKeys(t)
	other, err := simsnp.NewChain()
	if err != nil {
		t.Fatal(err)
	}
	ev := newReport(t, chain, testParams(), testReportData)

	_, err = attest.VerifySNP(ev, attest.VerifyOptions{InsecureTestOnlyRoots: other.Roots()})
	if !errors.Is(err, attest.ErrTestOnlyRootNotTrusted) {
		t.Errorf("VerifySNP(report of one chain, roots of another) = %v, expected ErrTestOnlyRootNotTrusted", err)
	}
}

func TestSimReportTamperedSignatureRejected(t *testing.T) {
	chain := testChain(t)
	ev := newReport(t, chain, testParams(), testReportData)
	ev.Report[0x90] ^= 1 // first byte of MEASUREMENT

	_, err := attest.VerifySNP(ev, attest.VerifyOptions{InsecureTestOnlyRoots: chain.Roots()})
	if !errors.Is(err, attest.ErrNotGenuine) {
		t.Fatalf("VerifySNP(tampered report) = %v, expected ErrNotGenuine", err)
	}
	if !strings.Contains(err.Error(), "signature") {
		t.Errorf("error %q does not name the signature", err)
	}
}

func TestCheckNamesTheChangedField(t *testing.T) {
	chain := testChain(t)
	cases := []struct {
		rule       string
		change     func(*simsnp.LaunchParams)
		reportData [64]byte
	}{
		{"measurement", func(p *simsnp.LaunchParams) { p.Measurement[47] ^= 0xff }, testReportData},
		{"host_data", func(p *simsnp.LaunchParams) { p.HostData[31] ^= 0xff }, testReportData},
		{"report_data", func(*simsnp.LaunchParams) {}, [64]byte{0x30, 0xb7, 47: 0x03, 63: 0x01}},
		{"debug", func(p *simsnp.LaunchParams) { p.Policy = simsnp.DefaultPolicy | simsnp.PolicyDebug }, testReportData},
		{"migration_agent", func(p *simsnp.LaunchParams) {
			p.Policy = simsnp.DefaultPolicy | simsnp.PolicyMigrationAgent
		}, testReportData},
		{"tcb.snp", func(p *simsnp.LaunchParams) {
			p.TCB = simsnp.DefaultTCB
			p.TCB.SNP--
		}, testReportData},
		{"guest_svn", func(p *simsnp.LaunchParams) {}, testReportData},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			p := testParams()
			c.change(&p)
			claims := verifyTrusted(t, chain, newReport(t, chain, p, c.reportData))

			ref := matchingReference()
			if c.rule == "guest_svn" {
				ref.MinGuestSVN = 1
			}
			verdict := attest.CheckSNP(claims, ref)
			if verdict.Allow {
				t.Fatalf("CheckSNP = allow, expected deny by rule %q", c.rule)
			}
			if len(verdict.Failed) != 1 || verdict.Failed[0].Rule != c.rule {
				t.Errorf("CheckSNP = %v, expected exactly the rule %q", verdict, c.rule)
			}
		})
	}
}

func TestCheckListsEveryFailedRule(t *testing.T) {
	chain := testChain(t)
	p := testParams()
	p.Measurement[0] ^= 1
	p.HostData[0] ^= 1
	p.Policy = simsnp.DefaultPolicy | simsnp.PolicyDebug
	claims := verifyTrusted(t, chain, newReport(t, chain, p, [64]byte{9}))

	ref := matchingReference()
	ref.AllowTestOnlyRoot = false
	verdict := attest.CheckSNP(claims, ref)

	var rules []string
	for _, f := range verdict.Failed {
		rules = append(rules, f.Rule)
	}
	want := []string{"measurement", "host_data", "report_data", "debug", "test_only_root"}
	if strings.Join(rules, ",") != strings.Join(want, ",") {
		t.Errorf("failed rules = %v, expected %v", rules, want)
	}
}

func TestCheckRejectsTestRootUnlessAllowed(t *testing.T) {
	chain := testChain(t)
	claims := verifyTrusted(t, chain, newReport(t, chain, testParams(), testReportData))
	ref := matchingReference()
	ref.AllowTestOnlyRoot = false

	verdict := attest.CheckSNP(claims, ref)
	if len(verdict.Failed) != 1 || verdict.Failed[0].Rule != "test_only_root" {
		t.Errorf("CheckSNP = %v, expected exactly the rule test_only_root", verdict)
	}
}

func TestCheckNeverAcceptsZeroHostData(t *testing.T) {
	chain := testChain(t)
	p := testParams()
	p.HostData = [32]byte{}
	claims := verifyTrusted(t, chain, newReport(t, chain, p, testReportData))
	ref := matchingReference()
	ref.HostData = [32]byte{}

	verdict := attest.CheckSNP(claims, ref)
	if len(verdict.Failed) != 1 || verdict.Failed[0].Rule != "host_data" {
		t.Errorf("CheckSNP(all-zero HOST_DATA on both sides) = %v, expected exactly the rule host_data", verdict)
	}
}

func TestDeviceWithOtherTCBGetsMatchingVCEK(t *testing.T) {
	chain := testChain(t)
	p := testParams()
	p.TCB = attest.TCB{BootLoader: 4, TEE: 1, SNP: 22, Microcode: 213}
	claims := verifyTrusted(t, chain, newReport(t, chain, p, testReportData))

	got := claims.ReportedTCB
	got.Raw = 0
	if got != p.TCB {
		t.Errorf("ReportedTCB = %v, expected %v", got, p.TCB)
	}
	ref := matchingReference()
	ref.MinTCB = p.TCB
	if verdict := attest.CheckSNP(claims, ref); !verdict.Allow {
		t.Errorf("CheckSNP = %v, expected allow", verdict)
	}
}

func TestNewDeviceRejectsInvalidLaunchParams(t *testing.T) {
	chain := testChain(t)
	cases := []struct {
		name   string
		change func(*simsnp.LaunchParams)
	}{
		{"policy without reserved bit 17", func(p *simsnp.LaunchParams) { p.Policy = simsnp.PolicySMT }},
		{"VMPL 4", func(p *simsnp.LaunchParams) { p.VMPL = 4 }},
		{"FMC on Milan", func(p *simsnp.LaunchParams) { p.TCB = attest.TCB{FMC: 1, SNP: 8} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testParams()
			c.change(&p)
			if _, err := simsnp.NewDevice(chain, p); err == nil {
				t.Error("NewDevice succeeded, expected an error")
			}
		})
	}
}

func BenchmarkVerifyAndCheck(b *testing.B) {
	chain := testChain(b)
	ev := newReport(b, chain, testParams(), testReportData)
	opts := attest.VerifyOptions{InsecureTestOnlyRoots: chain.Roots()}
	ref := matchingReference()
	for b.Loop() {
		claims, err := attest.VerifySNP(ev, opts)
		if err != nil {
			b.Fatal(err)
		}
		if verdict := attest.CheckSNP(claims, ref); !verdict.Allow {
			b.Fatal(verdict)
		}
	}
}
