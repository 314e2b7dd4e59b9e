package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-sev-guest/abi"
)

const (
	// ReportSize is the size in bytes of a raw SEV-SNP attestation report
	// (ATTESTATION_REPORT, 0x4A0 bytes in every report version).
	ReportSize = abi.ReportSize

	// MaxCertificateSize is the maximum size of one DER certificate in the
	// evidence. AMD's VCEK, VLEK, ASK and ARK certificates are below 2 KiB.
	MaxCertificateSize = 16 << 10

	// MaxEvidenceJSONSize is the maximum size of the evidence JSON that
	// [ParseSNPEvidence] accepts: a base64 report and four base64
	// certificates of maximum size, with room for whitespace.
	MaxEvidenceJSONSize = 96 << 10
)

// ErrInvalidEvidence is wrapped by every error about malformed evidence:
// invalid JSON, wrong sizes, or a report or certificate that does not parse.
var ErrInvalidEvidence = errors.New("invalid SNP evidence")

// SNPEvidence is a guest's proof that it runs under SEV-SNP: the raw
// attestation report and the certificates that vouch for its signing key.
//
// Its JSON form is
//
//	{"report": base64, "cert_chain": {"vcek": base64 DER, "ask": ..., "ark": ...}}
//
// with standard base64 (RFC 4648 section 4, padded).
type SNPEvidence struct {
	// Report is the raw ATTESTATION_REPORT, exactly ReportSize bytes.
	Report []byte `json:"report"`
	// CertChain contains the certificates from the endorsement key up to
	// the ARK.
	CertChain CertChain `json:"cert_chain"`
}

// CertChain is the certificate chain of a report's signing key, each
// certificate in DER.
type CertChain struct {
	// VCEK is the certificate of the versioned chip endorsement key. It is
	// required when the report's SIGNING_KEY is 0 and must be empty otherwise.
	VCEK []byte `json:"vcek,omitempty"`
	// VLEK is the certificate of the versioned loaded endorsement key that
	// a cloud provider installs. It is required when SIGNING_KEY is 1 and
	// must be empty otherwise.
	VLEK []byte `json:"vlek,omitempty"`
	// ASK is the certificate that signed the VCEK (the ASK) or the VLEK
	// (the ASVK). Verification uses the trusted roots' copy, so this one
	// only helps diagnose an untrusted chain.
	ASK []byte `json:"ask,omitempty"`
	// ARK is the AMD root key's self-signed certificate, with the same role
	// as ASK.
	ARK []byte `json:"ark,omitempty"`
}

// ParseSNPEvidence decodes the JSON form of SNP evidence. Unknown fields,
// a report that is not ReportSize bytes and oversized certificates are
// errors that wrap [ErrInvalidEvidence].
func ParseSNPEvidence(data []byte) (*SNPEvidence, error) {
	if len(data) > MaxEvidenceJSONSize {
		return nil, fmt.Errorf("%w: evidence JSON is %d bytes, more than the maximum %d",
			ErrInvalidEvidence, len(data), MaxEvidenceJSONSize)
	}
	var ev SNPEvidence
	if err := json.Unmarshal(data, &ev); err != nil {
		if errors.Is(err, ErrInvalidEvidence) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	return &ev, nil
}

// MarshalJSON encodes the evidence after checking the sizes of its fields.
func (e SNPEvidence) MarshalJSON() ([]byte, error) {
	if err := e.checkSizes(); err != nil {
		return nil, err
	}
	type plain SNPEvidence
	return json.Marshal(plain(e))
}

// UnmarshalJSON decodes the evidence, rejects unknown fields and checks the
// sizes of its fields.
func (e *SNPEvidence) UnmarshalJSON(data []byte) error {
	type plain SNPEvidence
	var decoded plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&decoded); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidEvidence, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the evidence object", ErrInvalidEvidence)
	}
	ev := SNPEvidence(decoded)
	if err := ev.checkSizes(); err != nil {
		return err
	}
	*e = ev
	return nil
}

func (e *SNPEvidence) checkSizes() error {
	if len(e.Report) != ReportSize {
		return fmt.Errorf("%w: report is %d bytes, expected %d", ErrInvalidEvidence, len(e.Report), ReportSize)
	}
	certs := []struct {
		name string
		der  []byte
	}{
		{"vcek", e.CertChain.VCEK},
		{"vlek", e.CertChain.VLEK},
		{"ask", e.CertChain.ASK},
		{"ark", e.CertChain.ARK},
	}
	for _, c := range certs {
		if len(c.der) > MaxCertificateSize {
			return fmt.Errorf("%w: cert_chain.%s is %d bytes, more than the maximum %d",
				ErrInvalidEvidence, c.name, len(c.der), MaxCertificateSize)
		}
	}
	if len(e.CertChain.VCEK) == 0 && len(e.CertChain.VLEK) == 0 {
		return fmt.Errorf("%w: cert_chain has neither a vcek nor a vlek certificate", ErrInvalidEvidence)
	}
	return nil
}
