package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// isTurinVCEKReport reports whether a report is signed by a VCEK and its
// signed CPUID fields name a Turin processor. go-sev-guest v0.15.0 rejects
// Turin VCEKs, because it accepts neither the fmcSPL extension nor an 8-byte
// hwID, and it compares TCBs in the Milan and Genoa layout. So [VerifySNP]
// verifies such reports with [verifyTurinVCEK] instead.
//
// NOTE: Turin reports signed by a VLEK still go through go-sev-guest v0.15.0,
// which probably rejects them for the same reasons. No test has a Turin VLEK.
func isTurinVCEKReport(report *spb.Report, key SigningKey) bool {
	return key == VCEK && kds.ProductLineFromFms(report.GetCpuid1EaxFms()) == "Turin"
}

// verifyTurinVCEK verifies a Turin report signed by a VCEK without
// go-sev-guest's certificate handling. The VCEK must chain to a trusted
// Turin ARK, its TCB extensions must equal REPORTED_TCB in the Turin layout,
// its hwID must be the Turin prefix of CHIP_ID, and its P-384 key must
// verify the report's signature. The caller has checked the VCEK's validity
// at now.
func verifyTurinVCEK(ev *SNPEvidence, report *spb.Report, vcek *x509.Certificate, testRoots *Roots, now time.Time) (*SNPClaims, error) {
	evaluated := now.UTC().Format(time.RFC3339)
	testOnly, err := verifyTurinChain(ev.CertChain, vcek, testRoots, now)
	if err != nil {
		return nil, err
	}

	exts, err := parseTurinVCEKExtensions(vcek)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	if line := kds.ProductLineOfProductName(exts.productName); line != "Turin" {
		return nil, fmt.Errorf("%w: the report's CPUID fields name a Turin processor, but the VCEK certificate's productName is %q",
			ErrNotGenuine, exts.productName)
	}
	if err := checkTurinTCB(exts, report.GetReportedTcb()); err != nil {
		return nil, err
	}
	if err := checkTurinHWID(exts.hwID, report.GetChipId()); err != nil {
		return nil, err
	}

	key, ok := vcek.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P384() {
		return nil, fmt.Errorf("%w: the VCEK certificate's public key is %T, expected an ECDSA P-384 key",
			ErrNotGenuine, vcek.PublicKey)
	}
	if err := verify.SnpReportSignature(ev.Report, vcek); err != nil {
		return nil, fmt.Errorf("%w: VCEK-signed Turin report, evaluated at %s: %v", ErrNotGenuine, evaluated, err)
	}

	claims, err := claimsFromReport(report, VCEK, "Turin")
	if err != nil {
		return nil, err
	}
	claims.TestOnlyRoot = testOnly
	claims.EvaluatedAt = now
	// NOTE: claims.attestation stays nil because go-sev-guest v0.15.0's
	// validate package cannot parse a Turin VCEK. So CheckSNP's
	// report_consistency rule does not compare the committed and current
	// firmware versions of Turin reports.
	return claims, nil
}

// checkTurinTCB requires the VCEK's TCB extensions to encode, in the Turin
// layout, exactly the report's REPORTED_TCB. The reserved bytes of that
// layout must be zero in the report, and any spl4 to spl7 extension must be
// zero in the certificate.
func checkTurinTCB(exts *turinVCEKExtensions, reportedRaw uint64) error {
	reported, err := DecodeTCB("Turin", reportedRaw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	for name, v := range exts.reservedSPLs {
		if v != 0 {
			return fmt.Errorf("%w: the VCEK certificate's %s extension is %d, but the Turin TCB layout has no such SPL",
				ErrNotGenuine, name, v)
		}
	}
	certRaw, err := EncodeTCB("Turin", exts.tcb)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	if certRaw != reportedRaw {
		return fmt.Errorf("%w: the VCEK certificate is issued for TCB %v (TCB_VERSION %#016x), but the report's REPORTED_TCB is %v (%#016x)",
			ErrNotGenuine, exts.tcb, certRaw, reported, reportedRaw)
	}
	return nil
}

// checkTurinHWID requires CHIP_ID to be the VCEK's hwID followed by zeros,
// which is how a Turin processor fills the 64-byte field.
func checkTurinHWID(hwID, chipID []byte) error {
	prefix, rest := chipID[:turinHWIDSize], chipID[turinHWIDSize:]
	if !bytes.Equal(prefix, hwID) || !allZero(rest) {
		return fmt.Errorf("%w: the report's CHIP_ID %x is not the VCEK certificate's hwID %x followed by zeros",
			ErrNotGenuine, chipID, hwID)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// verifyTurinChain checks that vcek chains to a trusted Turin ARK: AMD's,
// or one from testRoots. The evidence's ARK, when present, must equal the
// trusted ARK, and the evidence's ASK, when present, replaces the trusted
// one but must be signed by the trusted ARK. It returns whether the ARK is
// a test-only root.
//
// NOTE: certificate revocation lists are not checked, as on the other paths
// of VerifySNP: fetching is disabled and the evidence carries none.
func verifyTurinChain(chain CertChain, vcek *x509.Certificate, testRoots *Roots, now time.Time) (bool, error) {
	evidenceARK, evidenceASK, err := parseOptionalChain(chain)
	if err != nil {
		return false, err
	}
	amd, err := AMDRoots()
	if err != nil {
		return false, err
	}
	type candidate struct {
		root     *trust.AMDRootCerts
		testOnly bool
	}
	var candidates []candidate
	for _, r := range amd.byProductLine["Turin"] {
		candidates = append(candidates, candidate{r, false})
	}
	if testRoots != nil {
		for _, r := range testRoots.byProductLine["Turin"] {
			candidates = append(candidates, candidate{r, true})
		}
	}

	var errs []error
	for _, c := range candidates {
		ark, ask := c.root.ProductCerts.Ark, c.root.ProductCerts.Ask
		if ark == nil || ask == nil {
			continue
		}
		if evidenceARK != nil && !evidenceARK.Equal(ark) {
			continue
		}
		if evidenceASK != nil {
			ask = evidenceASK
		}
		err := checkTurinLinks(ark, ask, vcek, now)
		if err == nil {
			return c.testOnly, nil
		}
		errs = append(errs, err)
	}

	evaluated := now.UTC().Format(time.RFC3339)
	switch {
	case len(errs) > 0:
		return false, fmt.Errorf("%w: VCEK-signed Turin report, evaluated at %s: %w", ErrNotGenuine, evaluated, errors.Join(errs...))
	case evidenceARK == nil:
		return false, fmt.Errorf("%w: no trusted Turin ARK and ASK are configured", ErrNotGenuine)
	case isTestOnlyARK(evidenceARK):
		return false, fmt.Errorf("%w: %w", ErrNotGenuine, ErrTestOnlyRootNotTrusted)
	default:
		return false, fmt.Errorf("%w: the evidence's ARK %q is not a trusted Turin ARK", ErrNotGenuine,
			evidenceARK.Subject.CommonName)
	}
}

// parseOptionalChain parses the evidence's ARK and ASK, each nil when absent.
func parseOptionalChain(chain CertChain) (ark, ask *x509.Certificate, err error) {
	if len(chain.ARK) > 0 {
		if ark, err = x509.ParseCertificate(chain.ARK); err != nil {
			return nil, nil, fmt.Errorf("%w: parsing the ARK certificate: %v", ErrInvalidEvidence, err)
		}
	}
	if len(chain.ASK) > 0 {
		if ask, err = x509.ParseCertificate(chain.ASK); err != nil {
			return nil, nil, fmt.Errorf("%w: parsing the ASK certificate: %v", ErrInvalidEvidence, err)
		}
	}
	return ark, ask, nil
}

// checkTurinLinks checks each link of the chain ARK, ASK, VCEK. The ARK must
// be self-signed, and each certificate must name its signer as issuer and be
// signed by it with RSA-PSS and SHA-384, as AMD signs them. Each must also be
// valid at now and have no critical extension other than AMD's.
func checkTurinLinks(ark, ask, vcek *x509.Certificate, now time.Time) error {
	links := []struct {
		name, issuerName string
		cert, issuer     *x509.Certificate
	}{
		{"ARK", "ARK", ark, ark},
		{"ASK", "ARK", ask, ark},
		{"VCEK", "ASK", vcek, ask},
	}
	for _, l := range links {
		if l.cert.SignatureAlgorithm != x509.SHA384WithRSAPSS {
			return fmt.Errorf("the %s certificate %q is signed with %v, expected %v",
				l.name, l.cert.Subject.CommonName, l.cert.SignatureAlgorithm, x509.SHA384WithRSAPSS)
		}
		if !bytes.Equal(l.cert.RawIssuer, l.issuer.RawSubject) {
			return fmt.Errorf("the %s certificate's issuer %q is not the %s %q",
				l.name, l.cert.Issuer.CommonName, l.issuerName, l.issuer.Subject.CommonName)
		}
		if err := l.cert.CheckSignatureFrom(l.issuer); err != nil {
			return fmt.Errorf("the %s certificate %q is not signed by the %s %q: %v",
				l.name, l.cert.Subject.CommonName, l.issuerName, l.issuer.Subject.CommonName, err)
		}
	}
	for _, l := range links {
		c := l.cert
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("the %s certificate %q is valid from %s to %s, not at the evaluation time",
				l.name, c.Subject.CommonName,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
		for _, oid := range c.UnhandledCriticalExtensions {
			if !isUnderArc(oid, oidAMDArc) {
				return fmt.Errorf("the %s certificate %q has the unsupported critical extension %s",
					l.name, c.Subject.CommonName, oid)
			}
		}
	}
	return nil
}
