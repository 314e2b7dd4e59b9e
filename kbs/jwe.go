package kbs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA tee-pubkey the broker encrypts to.
const minRSABits = 2048

// parseTEEKey decodes the tee-pubkey JWK of a runtime-data object and
// returns the public key with the JWE key algorithm it is used with:
// ECDH-ES+A256KW for EC P-256, RSA-OAEP-256 for RSA of at least 2048 bits.
// A JWK that names another algorithm, or carries private key material,
// is rejected.
func parseTEEKey(raw json.RawMessage) (*jose.JSONWebKey, jose.KeyAlgorithm, error) {
	if len(raw) == 0 {
		return nil, "", fmt.Errorf("runtime-data has no tee-pubkey")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &header); err != nil {
		return nil, "", fmt.Errorf("tee-pubkey is not a JSON object: %v", err)
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil {
		return nil, "", fmt.Errorf("tee-pubkey is not a valid JWK: %v", err)
	}
	if !key.IsPublic() {
		return nil, "", fmt.Errorf("tee-pubkey contains private key material")
	}
	switch pub := key.Key.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("tee-pubkey curve %s is not supported; use P-256",
				pub.Curve.Params().Name)
		}
		if header.Alg != "" && header.Alg != string(jose.ECDH_ES_A256KW) {
			return nil, "", fmt.Errorf("tee-pubkey alg %q is not supported for EC keys; use %s",
				header.Alg, jose.ECDH_ES_A256KW)
		}
		return &key, jose.ECDH_ES_A256KW, nil
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("tee-pubkey RSA modulus has %d bits, fewer than %d",
				pub.N.BitLen(), minRSABits)
		}
		if header.Alg != "" && header.Alg != string(jose.RSA_OAEP_256) {
			return nil, "", fmt.Errorf("tee-pubkey alg %q is not supported for RSA keys; use %s",
				header.Alg, jose.RSA_OAEP_256)
		}
		return &key, jose.RSA_OAEP_256, nil
	default:
		return nil, "", fmt.Errorf("tee-pubkey key type %T is not supported; use EC P-256 or RSA",
			key.Key)
	}
}

// encryptResource returns the flattened JWE JSON serialization (RFC 7516
// section 7.2.2) of plaintext, encrypted to key with alg and A256GCM. The
// tag is a separate member and the AAD is the ASCII of the protected
// header, as RFC 7516 specifies, never the legacy form of KBS protocol
// versions before 0.2.0 with the tag inside the ciphertext.
func encryptResource(key *jose.JSONWebKey, alg jose.KeyAlgorithm, plaintext []byte) ([]byte, error) {
	encrypter, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: key.Key}, nil)
	if err != nil {
		return nil, err
	}
	obj, err := encrypter.Encrypt(plaintext)
	if err != nil {
		return nil, err
	}
	return []byte(obj.FullSerialize()), nil
}
