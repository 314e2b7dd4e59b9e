package sealed

import (
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"

	"cove.dev/cove/internal/canonjson"
)

// NewWriter writes the two header lines of a sealed file to w and returns a
// writer that encrypts what is written to it into the body. The caller must
// call Close to write the last segment, and Close leaves w open.
//
// dataKey must be [DataKeySize] bytes from a cryptographically secure source
// and must not be used for another file. An empty h.Stream is set to
// [StreamAES256GCMHKDF1MB] and an empty h.Resource to ResourcePath(h.Key,
// h.WrappedKey). NewWriter then rejects h if [Header.Validate] fails.
func NewWriter(w io.Writer, dataKey []byte, h Header) (io.WriteCloser, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("sealed: data key is %d bytes, expected %d", len(dataKey), DataKeySize)
	}

	if h.Stream == "" {
		h.Stream = StreamAES256GCMHKDF1MB
	}
	if h.Resource == "" {
		h.Resource = ResourcePath(h.Key, h.WrappedKey)
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}

	lines, err := headerLines(h)
	if err != nil {
		return nil, err
	}

	stream, err := newStreamingAEAD(dataKey)
	if err != nil {
		return nil, err
	}

	if _, err := w.Write(lines); err != nil {
		return nil, fmt.Errorf("sealed: writing header: %w", err)
	}

	// Tink writes its own 40-byte stream header (salt and nonce prefix)
	// here, then one segment per 1 MiB of ciphertext.
	body, err := stream.NewEncryptingWriter(w, lines)
	if err != nil {
		return nil, fmt.Errorf("sealed: starting body: %w", err)
	}
	return body, nil
}

// headerLines returns lines 1 and 2 of the file, which are also the
// associated data of the body.
func headerLines(h Header) ([]byte, error) {
	header, err := canonjson.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("sealed: encoding header: %w", err)
	}

	lines := make([]byte, 0, len(VersionLine)+len(header)+2)
	lines = append(lines, VersionLine...)
	lines = append(lines, '\n')
	lines = append(lines, header...)
	lines = append(lines, '\n')
	return lines, nil
}

// newStreamingAEAD returns Tink's AES256_GCM_HKDF_1MB primitive for
// dataKey. The body starts right after the header lines, so the first
// segment offset is 0.
//
// NOTE: Tink keeps its own copy of dataKey, which the caller cannot zero and
// which lives until the garbage collector frees it.
func newStreamingAEAD(dataKey []byte) (*subtle.AESGCMHKDF, error) {
	stream, err := subtle.NewAESGCMHKDF(dataKey, "SHA256", DataKeySize, SegmentSize, 0)
	if err != nil {
		return nil, fmt.Errorf("sealed: creating streaming AEAD: %w", err)
	}
	return stream, nil
}
