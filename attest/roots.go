package attest

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-sev-guest/verify/trust"
)

// TestOnlyRootMarker is the text that the subject of a test-only ARK
// contains, such as the one package cove.dev/cove/attest/simsnp creates.
// [VerifySNP] looks for it only to name the cause when it rejects evidence;
// it never trusts a root because of it.
const TestOnlyRootMarker = "TEST-ONLY"

// Roots is a set of trusted ARK certificates, each with its ASK (for VCEKs)
// and ASVK (for VLEKs), keyed by product line ("Milan", "Genoa", "Turin").
type Roots struct {
	testOnly      bool
	byProductLine map[string][]*trust.AMDRootCerts
}

var amdRoots = sync.OnceValues(loadAMDRoots)

// AMDRoots returns AMD's roots for Milan, Genoa and Turin, as embedded in
// package verify/trust of go-sev-guest v0.15.0, which took them from the
// cert_chain endpoints of AMD's KDS. [VerifySNP] always trusts them.
func AMDRoots() (*Roots, error) {
	return amdRoots()
}

func loadAMDRoots() (*Roots, error) {
	bundles := []struct {
		productLine string
		vcek, vlek  []byte
	}{
		{"Milan", trust.AskArkMilanVcekBytes, trust.AskArkMilanVlekBytes},
		{"Genoa", trust.AskArkGenoaVcekBytes, trust.AskArkGenoaVlekBytes},
		{"Turin", trust.AskArkTurinVcekBytes, trust.AskArkTurinVlekBytes},
	}
	roots := &Roots{byProductLine: map[string][]*trust.AMDRootCerts{}}
	for _, b := range bundles {
		// go-sev-guest v0.15.0 embeds the Turin VLEK bundle with a
		// trailing blank line, which its own parser rejects.
		b.vcek, b.vlek = bytes.TrimSpace(b.vcek), bytes.TrimSpace(b.vlek)
		vcekChain := &trust.ProductCerts{}
		if err := vcekChain.FromKDSCertBytes(b.vcek); err != nil {
			return nil, fmt.Errorf("parsing AMD's embedded %s VCEK cert_chain: %w", b.productLine, err)
		}
		vlekChain := &trust.ProductCerts{}
		if err := vlekChain.FromKDSCertBytes(b.vlek); err != nil {
			return nil, fmt.Errorf("parsing AMD's embedded %s VLEK cert_chain: %w", b.productLine, err)
		}
		if vcekChain.Ask == nil || vlekChain.Asvk == nil || vcekChain.Ark == nil || vlekChain.Ark == nil {
			return nil, fmt.Errorf("AMD's embedded %s cert_chain lacks the ASK, ASVK or ARK", b.productLine)
		}
		// AMD signs a product line's ASK and ASVK with one ARK. If the two
		// embedded copies of that ARK differ, each intermediate keeps its own.
		root := trust.AMDRootCertsProduct(b.productLine)
		root.ProductCerts = &trust.ProductCerts{Ask: vcekChain.Ask, Asvk: vlekChain.Asvk, Ark: vcekChain.Ark}
		if !vcekChain.Ark.Equal(vlekChain.Ark) {
			vlekRoot := trust.AMDRootCertsProduct(b.productLine)
			vlekRoot.ProductCerts = &trust.ProductCerts{Asvk: vlekChain.Asvk, Ark: vlekChain.Ark}
			root.ProductCerts.Asvk = nil
			roots.byProductLine[b.productLine] = append(roots.byProductLine[b.productLine], vlekRoot)
		}
		roots.byProductLine[b.productLine] = append(roots.byProductLine[b.productLine], root)
	}
	return roots, nil
}

// NewTestOnlyRoots returns roots for one product line made of a test-only
// ARK and the ASK it signed. Pass them only in
// [VerifyOptions.InsecureTestOnlyRoots]: anyone who has the private keys,
// which development tools keep in plain files, can sign reports with them.
func NewTestOnlyRoots(productLine string, ark, ask *x509.Certificate) (*Roots, error) {
	if ark == nil || ask == nil {
		return nil, errors.New("test-only roots need both the ARK and the ASK certificate")
	}
	switch productLine {
	case "Milan", "Genoa", "Turin":
	default:
		return nil, fmt.Errorf("unknown product line %q; expected Milan, Genoa or Turin", productLine)
	}
	if err := ask.CheckSignatureFrom(ark); err != nil {
		return nil, fmt.Errorf("test-only ASK %q is not signed by the ARK %q: %w",
			ask.Subject.CommonName, ark.Subject.CommonName, err)
	}
	root := trust.AMDRootCertsProduct(productLine)
	root.ProductCerts = &trust.ProductCerts{Ask: ask, Ark: ark}
	return &Roots{
		testOnly:      true,
		byProductLine: map[string][]*trust.AMDRootCerts{productLine: {root}},
	}, nil
}

// isTestOnlyARK reports whether the subject of ark contains TestOnlyRootMarker.
func isTestOnlyARK(ark *x509.Certificate) bool {
	return strings.Contains(ark.Subject.String(), TestOnlyRootMarker)
}
