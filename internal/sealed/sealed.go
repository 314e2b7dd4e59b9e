// Package sealed reads and writes Cove's sealed file format (".cove"), the
// encrypted form of a job input.
//
// A sealed file is two text lines followed by a binary body:
//
//	cove-sealed/v1
//	{"kbs":"...","key":"...","resource":"...","stream":"AES256_GCM_HKDF_1MB","wrapped_key":"vault:v1:..."}
//	<Tink streaming AEAD AES256_GCM_HKDF_1MB ciphertext>
//
// The second line is the [Header] as canonical JSON. The body is encrypted
// under a fresh 32-byte data key with Tink's AES-GCM-HKDF streaming AEAD
// (HKDF-SHA256, 32-byte derived key, 1 MiB ciphertext segments), and both
// text lines, newlines included, are its associated data. The file contains
// the data key only wrapped by a Vault Transit key, and the broker releases
// the data key to an attested guest as the KBS resource named in the header.
//
// To write a file, call [NewWriter] with the data key and the header. To read
// one, call [ReadHeader], obtain the data key for [Header.Resource], then call
// [Reader.Decrypt].
//
// # Errors
//
// A truncated file, reordered segments, a changed byte in the header or the
// body, and a wrong data key all make reading fail with an error that wraps
// [ErrCorrupt]. The body is authenticated one segment at a time, so a reader
// returns the plaintext of the segments that verified before it reports a
// later one as corrupt. Treat the plaintext as complete only after reading
// it to io.EOF.
package sealed

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Format constants of version 1.
const (
	// VersionLine is the first line of every version 1 file, without its
	// newline.
	VersionLine = "cove-sealed/v1"

	// StreamAES256GCMHKDF1MB names the body encryption in [Header.Stream]:
	// Tink AES-GCM-HKDF with HKDF-SHA256, 32-byte derived keys and 1 MiB
	// ciphertext segments.
	StreamAES256GCMHKDF1MB = "AES256_GCM_HKDF_1MB"

	// DataKeySize is the size in bytes of the data key.
	DataKeySize = 32

	// SegmentSize is the size in bytes of each ciphertext segment of the
	// body except the last, which may be shorter. The first segment also
	// contains Tink's 40-byte stream header.
	SegmentSize = 1 << 20

	// MaxKeyNameLength is the maximum length of a Transit key name.
	MaxKeyNameLength = 64
)

// Limits that keep the header readable in constant memory.
const (
	maxVersionLine    = 64
	maxHeaderLine     = 16 << 10
	maxWrappedKeySize = 4 << 10
	maxKBSURLSize     = 2 << 10
)

// ErrCorrupt is wrapped by every error that reports a sealed file as
// truncated, altered, reordered, of an unsupported version, or encrypted
// under a different data key. Use errors.Is to test for it.
var ErrCorrupt = errors.New("sealed file is corrupt")

// ErrUnsupportedVersion is wrapped, together with [ErrCorrupt], when the
// first line names a version of the format other than [VersionLine].
var ErrUnsupportedVersion = errors.New("unsupported sealed format version")

// Header is the second line of a sealed file. All fields are required, and
// [Header.Validate] states the rules for each.
type Header struct {
	// Key is the name of the Vault Transit key that wrapped the data key.
	Key string `json:"key"`

	// WrappedKey is the Vault Transit ciphertext of the data key
	// ("vault:v1:...").
	WrappedKey string `json:"wrapped_key"`

	// Resource is the KBS resource path under which the broker releases
	// the data key, as built by [ResourcePath] from Key and WrappedKey.
	Resource string `json:"resource"`

	// KBS is the base URL of the broker that holds the Transit key.
	KBS string `json:"kbs"`

	// Stream names the body encryption and must be
	// [StreamAES256GCMHKDF1MB].
	Stream string `json:"stream"`
}

// Validate returns an error naming the first field of h that breaks the
// format rules, which are:
//   - Key passes [ValidateKeyName].
//   - WrappedKey passes [ValidateWrappedKey].
//   - Resource equals ResourcePath(Key, WrappedKey).
//   - KBS is an absolute http or https URL without user information, query
//     or fragment.
//   - Stream is [StreamAES256GCMHKDF1MB].
func (h Header) Validate() error {
	if err := ValidateKeyName(h.Key); err != nil {
		return fmt.Errorf("header field key: %w", err)
	}

	if err := ValidateWrappedKey(h.WrappedKey); err != nil {
		return fmt.Errorf("header field wrapped_key: %w", err)
	}

	if want := ResourcePath(h.Key, h.WrappedKey); h.Resource != want {
		return fmt.Errorf("header field resource is %q, expected %q (built from key and wrapped_key)",
			h.Resource, want)
	}

	if err := validateKBSURL(h.KBS); err != nil {
		return fmt.Errorf("header field kbs: %w", err)
	}

	if h.Stream != StreamAES256GCMHKDF1MB {
		return fmt.Errorf("header field stream is %q, expected %q", h.Stream, StreamAES256GCMHKDF1MB)
	}
	return nil
}

// ValidateKeyName returns an error unless name is a valid Transit key name:
// 1 to 64 characters from a-z, 0-9, '-', '_' and '.', starting with a letter
// or a digit.
func ValidateKeyName(name string) error {
	if name == "" {
		return errors.New("key name is empty")
	}
	if len(name) > MaxKeyNameLength {
		return fmt.Errorf("key name is %d characters long, the maximum is %d", len(name), MaxKeyNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if i == 0 && !alnum {
			return fmt.Errorf("invalid key name %q: it must start with a-z or 0-9", name)
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("invalid key name %q: only a-z, 0-9, '-', '_' and '.' are allowed", name)
		}
	}
	return nil
}

// ResourcePath returns the KBS resource path of a data key:
// "cove/<key>/<wrapped>" with wrapped encoded as unpadded base64url, so
// that the path has exactly three segments whatever the ciphertext contains.
func ResourcePath(key, wrapped string) string {
	return "cove/" + key + "/" + base64.RawURLEncoding.EncodeToString([]byte(wrapped))
}

// ParseResourcePath splits a path built by [ResourcePath] into the Transit
// key name and the wrapped data key, and validates both.
func ParseResourcePath(resource string) (key, wrapped string, err error) {
	parts := strings.Split(resource, "/")
	if len(parts) != 3 || parts[0] != "cove" {
		return "", "", fmt.Errorf("invalid resource path %q: expected cove/<key>/<base64url of wrapped key>", resource)
	}

	key = parts[1]
	if err := ValidateKeyName(key); err != nil {
		return "", "", fmt.Errorf("invalid resource path %q: %w", resource, err)
	}

	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return "", "", fmt.Errorf("invalid resource path %q: last segment is not unpadded base64url: %w", resource, err)
	}
	wrapped = string(raw)
	if err := ValidateWrappedKey(wrapped); err != nil {
		return "", "", fmt.Errorf("invalid resource path %q: %w", resource, err)
	}
	return key, wrapped, nil
}

// ValidateWrappedKey returns an error unless wrapped has the shape of a
// Vault Transit ciphertext, "vault:v<version>:<ciphertext>", in printable
// ASCII and at most 4 KiB. It does not decode the ciphertext, which only
// Vault can interpret.
func ValidateWrappedKey(wrapped string) error {
	if len(wrapped) > maxWrappedKeySize {
		return fmt.Errorf("wrapped key is %d bytes long, the maximum is %d", len(wrapped), maxWrappedKeySize)
	}

	rest, ok := strings.CutPrefix(wrapped, "vault:v")
	version, ciphertext, found := strings.Cut(rest, ":")
	if !ok || !found || version == "" || ciphertext == "" || strings.Trim(version, "0123456789") != "" {
		return errors.New("wrapped key is not a Vault Transit ciphertext (vault:v<version>:<base64>)")
	}

	for _, c := range ciphertext {
		if c <= ' ' || c > '~' {
			return errors.New("wrapped key contains a space, control or non-ASCII character")
		}
	}
	return nil
}

func validateKBSURL(raw string) error {
	if len(raw) > maxKBSURLSize {
		return fmt.Errorf("URL is %d bytes long, the maximum is %d", len(raw), maxKBSURLSize)
	}

	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("URL %q must start with https:// or http://", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Errorf("URL %q must not contain user information, a query or a fragment", raw)
	}
	return nil
}
