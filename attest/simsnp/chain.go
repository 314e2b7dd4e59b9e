// Package simsnp is sim-snp, Cove's software SEV-SNP device for
// development. It plays the AMD firmware on the launcher's side: a
// [Device] returns standard SEV-SNP attestation reports, signed with the
// VCEK of a test-only AMD-style chain (ARK, ASK, VCEK) built with
// go-sev-guest's testing package.
//
// Everything it signs is test-only. Its private keys live in plain files,
// and its ARK's subject carries attest.TestOnlyRootMarker. A broker accepts
// its reports only when it passes [Chain.Roots] in
// attest.VerifyOptions.InsecureTestOnlyRoots, and a policy only when the
// reference values set AllowTestOnlyRoot.
//
// The launcher and the broker run in different processes, so they share
// the chain through a directory: [LoadOrCreateChain] creates it on first
// use and loads it afterwards, and [LoadRoots] reads only the public roots.
//
// NOTE: go-sev-guest v0.15.0's testing package, which this package imports,
// registers the flags -product, -product_name and -test_use_kds on
// flag.CommandLine when it is initialized, so a program that imports simsnp
// must not define flags with those names.
package simsnp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"time"

	"cove.dev/cove/attest"
	"github.com/google/go-sev-guest/kds"
	sevtesting "github.com/google/go-sev-guest/testing"
)

const (
	// ProductLine is the product line that sim-snp claims to be.
	ProductLine = "Milan"
	// ProductName is the KDS product name in the test-only VCEK certificate.
	ProductName = "Milan-B1"
)

// rsaKeyBits is the size of the ARK and ASK keys: 4096 bits, as AMD's. The
// package's tests lower it to make chains faster.
var rsaKeyBits = 4096

// DefaultTCB is the TCB a chain's VCEK is issued for, and the TCB a device
// reports unless LaunchParams sets another.
var DefaultTCB = attest.TCB{BootLoader: 3, TEE: 0, SNP: 8, Microcode: 115}

// Chain is a test-only AMD-style certificate chain with its private keys.
type Chain struct {
	// ARK is the self-signed test-only root certificate.
	ARK *x509.Certificate
	// ASK is the test-only signing key certificate, signed by the ARK.
	ASK *x509.Certificate
	// VCEK is the test-only chip endorsement key certificate for TCB and
	// ChipID, signed by the ASK.
	VCEK *x509.Certificate
	// ChipID is the chip id in the VCEK's HWID extension, random per chain.
	ChipID [64]byte
	// TCB is the TCB the VCEK certificate is issued for.
	TCB attest.TCB

	arkKey  *rsa.PrivateKey
	askKey  *rsa.PrivateKey
	vcekKey *ecdsa.PrivateKey
	roots   *attest.Roots
}

// NewChain creates a test-only chain with fresh keys, in memory only. Use
// [LoadOrCreateChain] when another process must verify its reports. Key
// generation takes about a second.
func NewChain() (*Chain, error) {
	arkKey, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generating the test-only ARK key: %w", err)
	}
	askKey, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generating the test-only ASK key: %w", err)
	}
	vcekKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the test-only VCEK key: %w", err)
	}
	var chipID [64]byte
	if _, err := rand.Read(chipID[:]); err != nil {
		return nil, err
	}

	// Back-date the certificates by a day so that a verifier whose clock
	// is slightly behind still accepts them.
	created := time.Now().UTC().Truncate(time.Second).Add(-24 * time.Hour)
	arkName := testOnlyARKName()
	builder := &sevtesting.AmdSignerBuilder{
		// The builder always certifies an ASVK too. sim-snp signs no VLEK
		// reports, so it reuses the ASK key and discards that certificate.
		Keys:             &sevtesting.AmdKeys{Ark: arkKey, Ask: askKey, Asvk: askKey, Vcek: vcekKey},
		ProductName:      ProductName,
		ArkCreationTime:  created,
		AskCreationTime:  created,
		AsvkCreationTime: created,
		VcekCreationTime: created,
		ArkCustom:        sevtesting.CertOverride{Subject: &arkName, Issuer: &arkName},
		VcekCustom:       sevtesting.CertOverride{Extensions: vcekExtensions(DefaultTCB, chipID)},
	}
	signer, err := builder.TestOnlyCertChain()
	if err != nil {
		return nil, fmt.Errorf("building the test-only chain: %w", err)
	}
	return newChain(signer.Ark, signer.Ask, signer.Vcek, arkKey, askKey, vcekKey)
}

// testOnlyARKName is the subject of sim-snp's ARK. go-sev-guest checks the
// VCEK's issuer (the ASK's subject) against AMD's names but not the ARK's
// subject, so the ARK can name itself test-only.
func testOnlyARKName() pkix.Name {
	return pkix.Name{
		CommonName:         "ARK-" + ProductLine,
		Organization:       []string{"Cove sim-snp " + attest.TestOnlyRootMarker},
		OrganizationalUnit: []string{attest.TestOnlyRootMarker + " root, never trust in production"},
	}
}

// vcekExtensions returns the KDS extensions of a VCEK certificate for tcb
// and chipID.
func vcekExtensions(tcb attest.TCB, chipID [64]byte) []pkix.Extension {
	parts := kds.TCBParts{BlSpl: tcb.BootLoader, TeeSpl: tcb.TEE, SnpSpl: tcb.SNP, UcodeSpl: tcb.Microcode}
	return sevtesting.CustomExtensions(parts, chipID[:], "", ProductName)
}

// newChain checks that the certificates chain and match the keys, and
// reads ChipID and TCB from the VCEK.
func newChain(ark, ask, vcek *x509.Certificate, arkKey, askKey *rsa.PrivateKey, vcekKey *ecdsa.PrivateKey) (*Chain, error) {
	if !arkKey.PublicKey.Equal(ark.PublicKey) || !askKey.PublicKey.Equal(ask.PublicKey) ||
		!vcekKey.PublicKey.Equal(vcek.PublicKey) {
		return nil, fmt.Errorf("test-only chain: a private key does not match its certificate")
	}
	if err := vcek.CheckSignatureFrom(ask); err != nil {
		return nil, fmt.Errorf("test-only chain: VCEK is not signed by the ASK: %w", err)
	}
	exts, err := kds.VcekCertificateExtensions(vcek)
	if err != nil {
		return nil, fmt.Errorf("test-only chain: reading the VCEK extensions: %w", err)
	}
	raw := uint64(exts.TCBVersion)
	tcb, err := attest.DecodeTCB(ProductLine, raw)
	if err != nil {
		return nil, err
	}
	roots, err := attest.NewTestOnlyRoots(ProductLine, ark, ask)
	if err != nil {
		return nil, err
	}
	c := &Chain{ARK: ark, ASK: ask, VCEK: vcek, TCB: tcb, arkKey: arkKey, askKey: askKey, vcekKey: vcekKey, roots: roots}
	copy(c.ChipID[:], exts.HWID)
	return c, nil
}

// Roots returns the chain's ARK and ASK as test-only roots, to pass in
// attest.VerifyOptions.InsecureTestOnlyRoots.
func (c *Chain) Roots() *attest.Roots {
	return c.roots
}

// vcekFor returns the chain's VCEK certificate when tcb is the chain's TCB,
// or else a new VCEK certificate for tcb signed by the ASK.
//
// NOTE: a real chip derives a different VCEK key for each TCB, but sim-snp
// certifies the same key for every TCB.
func (c *Chain) vcekFor(tcb attest.TCB) (*x509.Certificate, error) {
	tcb.Raw = 0
	current := c.TCB
	current.Raw = 0
	if tcb == current {
		return c.VCEK, nil
	}
	template := &x509.Certificate{
		SerialNumber:       c.VCEK.SerialNumber,
		Subject:            c.VCEK.Subject,
		NotBefore:          c.VCEK.NotBefore,
		NotAfter:           c.VCEK.NotAfter,
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		ExtraExtensions:    vcekExtensions(tcb, c.ChipID),
	}
	der, err := x509.CreateCertificate(rand.Reader, template, c.ASK, &c.vcekKey.PublicKey, c.askKey)
	if err != nil {
		return nil, fmt.Errorf("issuing a test-only VCEK certificate for TCB %v: %w", tcb, err)
	}
	return x509.ParseCertificate(der)
}
