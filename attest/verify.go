package attest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
)

// ErrNotGenuine is wrapped by every error of [VerifySNP] about evidence
// that parses but fails verification.
var ErrNotGenuine = errors.New("SNP evidence is not genuine")

// ErrTestOnlyRootNotTrusted is wrapped, together with [ErrNotGenuine], when
// the evidence chains to a test-only root (see [TestOnlyRootMarker]) that
// VerifyOptions.InsecureTestOnlyRoots does not contain.
var ErrTestOnlyRootNotTrusted = errors.New(
	"evidence is signed by a test-only root, which this verifier does not trust; " +
		"pass the root in VerifyOptions.InsecureTestOnlyRoots, in development only")

// VerifyOptions configures [VerifySNP].
type VerifyOptions struct {
	// Now is the evaluation time: every certificate must be valid at Now.
	// Zero means the current time. An offline auditor sets it to the time
	// the evidence was collected.
	Now time.Time
	// InsecureTestOnlyRoots, when not nil, is trusted in addition to AMD's
	// roots. It must come from [NewTestOnlyRoots]. Claims verified through
	// it have TestOnlyRoot set. Never set it in production: the private
	// keys of test-only roots are not protected.
	InsecureTestOnlyRoots *Roots
}

// VerifySNP checks that ev is genuine. The report must parse, and its
// signature must verify with the endorsement key certificate that
// SIGNING_KEY selects (VCEK or VLEK). That certificate must be valid at
// opts.Now, chain to AMD's roots or to opts.InsecureTestOnlyRoots, and be
// issued for the report's REPORTED_TCB. VerifySNP fetches nothing over the
// network. For a VCEK-signed report from a Turin processor, VerifySNP checks
// the chain and the VCEK's extensions itself, because go-sev-guest v0.15.0
// rejects Turin VCEKs.
//
// NOTE: certificate revocation lists are not checked, because fetching is
// disabled and the evidence carries none.
//
// Errors wrap [ErrInvalidEvidence] for malformed evidence and
// [ErrNotGenuine] for evidence that fails verification.
//
// VerifySNP says nothing about whether the claims are acceptable; pass them
// to [CheckSNP] for that.
func VerifySNP(ev *SNPEvidence, opts VerifyOptions) (*SNPClaims, error) {
	if ev == nil {
		return nil, fmt.Errorf("%w: no evidence", ErrInvalidEvidence)
	}
	if err := ev.checkSizes(); err != nil {
		return nil, err
	}
	if opts.InsecureTestOnlyRoots != nil && !opts.InsecureTestOnlyRoots.testOnly {
		return nil, errors.New("VerifyOptions.InsecureTestOnlyRoots must come from NewTestOnlyRoots")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}

	if err := abi.ValidateReportFormat(ev.Report); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	report, err := abi.ReportToProto(ev.Report)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing the report: %v", ErrInvalidEvidence, err)
	}
	signer, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	key, cert, err := endorsementKeyCert(signer.SigningKey, ev.CertChain)
	if err != nil {
		return nil, err
	}
	if err := checkValidity(key, cert, now); err != nil {
		return nil, err
	}
	if isTurinVCEKReport(report, key) {
		return verifyTurinVCEK(ev, report, cert, opts.InsecureTestOnlyRoots, now)
	}

	attestation := &spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{
		AskCert: ev.CertChain.ASK,
		ArkCert: ev.CertChain.ARK,
		Extras:  map[string][]byte{},
	}}
	if key == VLEK {
		attestation.CertificateChain.VlekCert = cert.Raw
	} else {
		attestation.CertificateChain.VcekCert = cert.Raw
	}
	testOnly, err := verifyChainAndSignature(attestation, opts.InsecureTestOnlyRoots, now)
	if err != nil {
		if signedByTestOnlyRoot(ev, cert, now) {
			return nil, fmt.Errorf("%w: %w", ErrNotGenuine, ErrTestOnlyRootNotTrusted)
		}
		return nil, fmt.Errorf("%w: %s-signed report, evaluated at %s: %v",
			ErrNotGenuine, key, now.UTC().Format(time.RFC3339), err)
	}

	claims, err := newClaims(report, key, cert)
	if err != nil {
		return nil, err
	}
	// The raw comparison assumes the Milan and Genoa TCB layout that
	// go-sev-guest v0.15.0 uses for certificate extensions. That version
	// rejects Turin certificates before this point.
	if certTCB := claims.endorsedTCB; certTCB != report.GetReportedTcb() {
		return nil, fmt.Errorf("%w: the %s certificate is issued for TCB_VERSION %#016x, but the report's REPORTED_TCB is %#016x",
			ErrNotGenuine, key, certTCB, report.GetReportedTcb())
	}
	claims.TestOnlyRoot = testOnly
	claims.EvaluatedAt = now
	claims.attestation = attestation
	return claims.SNPClaims, nil
}

// endorsementKeyCert picks the certificate that SIGNING_KEY names and
// rejects evidence that offers a certificate for the other kind of key.
func endorsementKeyCert(signer abi.ReportSigner, chain CertChain) (SigningKey, *x509.Certificate, error) {
	var key SigningKey
	var der, other []byte
	switch signer {
	case abi.VcekReportSigner:
		key, der, other = VCEK, chain.VCEK, chain.VLEK
	case abi.VlekReportSigner:
		key, der, other = VLEK, chain.VLEK, chain.VCEK
	default:
		return "", nil, fmt.Errorf("%w: the report's SIGNING_KEY is %v; only VCEK (0) and VLEK (1) reports can be verified",
			ErrNotGenuine, signer)
	}

	otherKey := VLEK
	if key == VLEK {
		otherKey = VCEK
	}
	if len(other) > 0 {
		return "", nil, fmt.Errorf("%w: the report is signed by the %s (SIGNING_KEY %d), but the evidence carries a %s certificate",
			ErrNotGenuine, key, signer, otherKey)
	}
	if len(der) == 0 {
		return "", nil, fmt.Errorf("%w: the report is signed by the %s (SIGNING_KEY %d), but cert_chain has no %s certificate",
			ErrNotGenuine, key, signer, key)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", nil, fmt.Errorf("%w: parsing the %s certificate: %v", ErrInvalidEvidence, key, err)
	}
	if want := "SEV-" + string(key); cert.Subject.CommonName != want {
		return "", nil, fmt.Errorf("%w: the report is signed by the %s, but the certificate offered for it has common name %q, expected %q",
			ErrNotGenuine, key, cert.Subject.CommonName, want)
	}
	return key, cert, nil
}

// checkValidity returns an error that names the certificate's validity
// period and the evaluation time when cert is not valid at now.
func checkValidity(key SigningKey, cert *x509.Certificate, now time.Time) error {
	evaluated := now.UTC().Format(time.RFC3339)
	if now.After(cert.NotAfter) {
		return fmt.Errorf("%w: %s certificate expired on %s (evaluation time %s)",
			ErrNotGenuine, key, cert.NotAfter.UTC().Format(time.RFC3339), evaluated)
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("%w: %s certificate is not valid before %s (evaluation time %s)",
			ErrNotGenuine, key, cert.NotBefore.UTC().Format(time.RFC3339), evaluated)
	}
	return nil
}

// verifyChainAndSignature runs go-sev-guest's verification against AMD's
// roots and then, if they fail and testRoots is not nil, against testRoots.
// It returns whether the test-only roots verified the attestation.
func verifyChainAndSignature(attestation *spb.Attestation, testRoots *Roots, now time.Time) (bool, error) {
	amd, err := AMDRoots()
	if err != nil {
		return false, err
	}
	amdErr := verify.SnpAttestation(attestation, libraryOptions(amd, now))
	if amdErr == nil {
		return false, nil
	}
	if testRoots == nil {
		return false, amdErr
	}
	testErr := verify.SnpAttestation(attestation, libraryOptions(testRoots, now))
	if testErr == nil {
		return true, nil
	}
	return false, fmt.Errorf("with AMD's roots: %v; with the test-only roots: %v", amdErr, testErr)
}

func libraryOptions(roots *Roots, now time.Time) *verify.Options {
	return &verify.Options{
		DisableCertFetching: true,
		Now:                 now,
		TrustedRoots:        roots.byProductLine,
	}
}

// signedByTestOnlyRoot reports whether the endorsement key certificate
// chains to the ASK and a test-only ARK carried in the evidence itself, and
// the report's signature verifies with it. It only chooses the error
// message: the evidence is rejected either way.
func signedByTestOnlyRoot(ev *SNPEvidence, cert *x509.Certificate, now time.Time) bool {
	ark, err := x509.ParseCertificate(ev.CertChain.ARK)
	if err != nil || !isTestOnlyARK(ark) {
		return false
	}
	ask, err := x509.ParseCertificate(ev.CertChain.ASK)
	if err != nil {
		return false
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ark)
	intermediates.AddCert(ask)
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: now})
	if err != nil {
		return false
	}
	return verify.SnpReportSignature(ev.Report, cert) == nil
}

// productLine returns the product line from the signed CPUID fields of
// report versions 3 and later, or else from the certificate's product name.
func productLine(report *spb.Report, key SigningKey, exts *kds.Extensions) (string, error) {
	if fms := report.GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms), nil
	}
	signer := abi.VcekReportSigner
	if key == VLEK {
		signer = abi.VlekReportSigner
	}
	product, err := kds.ParseProductName(exts.ProductName, signer)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	return kds.ProductLine(product), nil
}
