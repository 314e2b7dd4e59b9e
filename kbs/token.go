package kbs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"cove.dev/cove/attest"
)

// tokenIssuer is the iss claim of the broker's attestation tokens.
const tokenIssuer = "cove-kbs"

// TokenClaims are the claims of the attestation token (a JWT signed with
// ES256) that /kbs/v0/attest returns.
type TokenClaims struct {
	jwt.Claims
	// TEE is the TEE type the guest announced in /kbs/v0/auth.
	TEE string `json:"tee"`
	// TEEPubKey is the tee-pubkey of the runtime-data, the key that
	// resource responses are encrypted to.
	TEEPubKey *jose.JSONWebKey `json:"tee-pubkey"`
	// TCBStatus is the JSON text of the claims verified from the evidence
	// (see [EvidenceSummary]).
	TCBStatus string `json:"tcb-status"`
	// EvaluationReport is the result of the evaluation at /kbs/v0/attest.
	// The release policy is evaluated later, per resource.
	EvaluationReport string `json:"evaluation-report"`
	// InsecureTestOnlyRoot is true when the evidence chains to a test-only
	// root, which the broker trusts only with insecure_trust_test_only_root.
	InsecureTestOnlyRoot bool `json:"insecure_test_only_root"`
}

// EvidenceSummary is the JSON form of verified SNP claims in a token and
// in logs: hex strings for byte fields, TCBs as their named SPLs.
type EvidenceSummary struct {
	Product      string `json:"product"`
	SigningKey   string `json:"signing_key"`
	Measurement  string `json:"measurement"`
	HostData     string `json:"host_data"`
	ReportData   string `json:"report_data"`
	Debug        bool   `json:"debug"`
	PolicyRaw    string `json:"policy"`
	GuestSVN     uint32 `json:"guest_svn"`
	VMPL         uint32 `json:"vmpl"`
	ReportedTCB  string `json:"reported_tcb"`
	TestOnlyRoot bool   `json:"test_only_root"`
}

func summarize(c *attest.SNPClaims) EvidenceSummary {
	return EvidenceSummary{
		Product:      c.Product,
		SigningKey:   string(c.SigningKey),
		Measurement:  hex.EncodeToString(c.Measurement[:]),
		HostData:     hex.EncodeToString(c.HostData[:]),
		ReportData:   hex.EncodeToString(c.ReportData[:]),
		Debug:        c.Policy.Debug,
		PolicyRaw:    fmt.Sprintf("%#x", c.Policy.Raw),
		GuestSVN:     c.GuestSVN,
		VMPL:         c.VMPL,
		ReportedTCB:  c.ReportedTCB.String(),
		TestOnlyRoot: c.TestOnlyRoot,
	}
}

// tokenSigner signs and verifies the broker's attestation tokens.
type tokenSigner struct {
	key    *ecdsa.PrivateKey
	signer jose.Signer
}

// loadTokenSigner reads the ES256 signing key from path, creating it when
// the file does not exist, so tokens stay verifiable across restarts.
func loadTokenSigner(path string) (*tokenSigner, error) {
	key, err := readECKey(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = createECKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token signing key %s: %w", path, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &tokenSigner{key: key, signer: signer}, nil
}

func readECKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "EC PRIVATE KEY" {
		return nil, errors.New("not a PEM EC PRIVATE KEY")
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

func createECKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return key, writeFileAtomic(path, data, 0o600)
}

func (ts *tokenSigner) sign(c TokenClaims) (string, error) {
	return jwt.Signed(ts.signer).Claims(c).Serialize()
}

// verify checks the token's signature, issuer and expiry at now and
// returns its claims.
func (ts *tokenSigner) verify(token string, now time.Time) (*TokenClaims, error) {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("token is not a valid JWT: %v", err)
	}
	var c TokenClaims
	if err := parsed.Claims(&ts.key.PublicKey, &c); err != nil {
		return nil, errors.New("token signature is not valid for this broker")
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: tokenIssuer, Time: now}, 0)
	if err != nil {
		return nil, fmt.Errorf("token rejected: %v", err)
	}
	if c.ID == "" || c.TEEPubKey == nil {
		return nil, errors.New("token lacks a jti or tee-pubkey claim")
	}
	return &c, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}
