package sealed

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"

	"cove.dev/cove/internal/canonjson"
)

// Sizes of the Tink body layout, used to name the segment that failed.
const (
	tinkHeaderSize    = 1 + DataKeySize + subtle.AESGCMHKDFNoncePrefixSizeInBytes
	firstPlaintextLen = SegmentSize - tinkHeaderSize - subtle.AESGCMHKDFTagSizeInBytes
	plaintextLen      = SegmentSize - subtle.AESGCMHKDFTagSizeInBytes
)

// Reader is a sealed file whose header has been read and validated. Call
// [Reader.Decrypt] once to read the body.
type Reader struct {
	header  Header
	aad     []byte
	body    io.Reader
	started bool
}

// ReadHeader reads and validates the two header lines of a sealed file from
// r, and returns the header and a [Reader] of the body. It reads up to 16 KiB
// of r ahead into a buffer that the Reader continues from, so r must not be
// read elsewhere afterwards.
//
// Line 2 must be the canonical JSON of a [Header] that passes
// [Header.Validate], with no unknown fields. Any violation, and a version
// line other than [VersionLine], returns an error wrapping [ErrCorrupt].
// Errors from r itself are returned as they are.
func ReadHeader(r io.Reader) (Header, *Reader, error) {
	br := bufio.NewReaderSize(r, maxHeaderLine)

	version, err := readVersionLine(br)
	if err != nil {
		return Header{}, nil, err
	}

	line, err := readLine(br, maxHeaderLine, "line 2 (header)")
	if err != nil {
		return Header{}, nil, err
	}
	h, err := parseHeader(line)
	if err != nil {
		return Header{}, nil, err
	}

	aad := make([]byte, 0, len(version)+len(line))
	aad = append(aad, version...)
	aad = append(aad, line...)
	return h, &Reader{header: h, aad: aad, body: br}, nil
}

// readLine returns the next line of br including its newline. It fails if
// the line is longer than limit bytes, newline included.
func readLine(br *bufio.Reader, limit int, name string) ([]byte, error) {
	peek, err := br.Peek(limit)
	i := bytes.IndexByte(peek, '\n')
	if i < 0 {
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrCorrupt, name, limit)
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: file ends inside %s", ErrCorrupt, name)
		}
		return nil, fmt.Errorf("sealed: reading %s: %w", name, err)
	}

	line := make([]byte, i+1)
	copy(line, peek)
	if _, err := br.Discard(i + 1); err != nil {
		return nil, fmt.Errorf("sealed: reading %s: %w", name, err)
	}
	return line, nil
}

// readVersionLine returns line 1 including its newline if it is
// [VersionLine].
func readVersionLine(br *bufio.Reader) ([]byte, error) {
	const prefix = "cove-sealed/"
	if start, _ := br.Peek(len(prefix)); !bytes.Equal(start, []byte(prefix)) {
		if len(start) == 0 {
			return nil, fmt.Errorf("%w: file is empty", ErrCorrupt)
		}
		return nil, fmt.Errorf("%w: file starts with %q, expected %q: this is not a sealed file",
			ErrCorrupt, start, VersionLine)
	}

	line, err := readLine(br, maxVersionLine, "line 1 (version)")
	if err != nil {
		return nil, err
	}
	if version := strings.TrimSuffix(string(line), "\n"); version != VersionLine {
		return nil, fmt.Errorf("%w: %w %q: this build reads only %q",
			ErrCorrupt, ErrUnsupportedVersion, version, VersionLine)
	}
	return line, nil
}

func parseHeader(line []byte) (Header, error) {
	text := line[:len(line)-1]

	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	var h Header
	if err := dec.Decode(&h); err != nil {
		return Header{}, fmt.Errorf("%w: line 2 is not a valid header: %w", ErrCorrupt, err)
	}

	if err := h.Validate(); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}

	// The header bytes are the associated data, so only one encoding of a
	// header is accepted. This also rejects trailing data, duplicate fields
	// and invalid UTF-8, which encoding/json would otherwise accept or repair.
	canonical, err := canonjson.Marshal(h)
	if err != nil {
		return Header{}, fmt.Errorf("sealed: encoding header: %w", err)
	}
	if !bytes.Equal(canonical, text) {
		return Header{}, fmt.Errorf("%w: line 2 is not canonical JSON", ErrCorrupt)
	}
	return h, nil
}

// Header returns the validated header.
func (r *Reader) Header() Header {
	return r.header
}

// Decrypt reads Tink's stream header from the body and returns a reader of
// the plaintext. Each Read authenticates at most one segment. A wrong
// dataKey is only detected by the first Read, which then fails with
// [ErrCorrupt] like an altered file.
//
// Decrypt can be called only once, because it consumes the body.
func (r *Reader) Decrypt(dataKey []byte) (io.Reader, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("sealed: data key is %d bytes, expected %d", len(dataKey), DataKeySize)
	}
	if r.started {
		return nil, errors.New("sealed: Decrypt was already called on this Reader")
	}
	r.started = true

	stream, err := newStreamingAEAD(dataKey)
	if err != nil {
		return nil, err
	}

	src := &errorRecorder{r: r.body}
	plaintext, err := stream.NewDecryptingReader(src, r.aad)
	if err != nil {
		return nil, classify(src, err, "reading the stream header of the body")
	}
	return &bodyReader{src: src, plaintext: plaintext}, nil
}

// bodyReader adds sealed-file errors to Tink's decrypting reader and keeps
// returning the first error.
type bodyReader struct {
	src       *errorRecorder
	plaintext io.Reader
	offset    int64
	err       error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}

	n, err := b.plaintext.Read(p)
	b.offset += int64(n)
	if err == io.EOF {
		b.err = io.EOF
	} else if err != nil {
		// Tink returns the buffered plaintext of a segment before it
		// reads the next one, so offset is the start of the failed segment.
		where := fmt.Sprintf("segment %d (plaintext offset %d)", segmentIndex(b.offset), b.offset)
		b.err = classify(b.src, err, where)
	}
	return n, b.err
}

func segmentIndex(offset int64) int64 {
	if offset < firstPlaintextLen {
		return 0
	}
	return 1 + (offset-firstPlaintextLen)/plaintextLen
}

// classify returns err as an I/O error when the underlying reader failed,
// and as [ErrCorrupt] otherwise, because Tink reports truncation, a wrong
// key and altered bytes alike as a failed read or decryption.
func classify(src *errorRecorder, err error, where string) error {
	if src.err != nil {
		return fmt.Errorf("sealed: %s: %w", where, src.err)
	}
	return fmt.Errorf("%w: %s: authentication failed, so the file was truncated, reordered or altered, "+
		"or the data key is wrong: %v", ErrCorrupt, where, err)
}

// errorRecorder stores the first error of r other than io.EOF, so that an
// I/O error is not reported as a corrupt file.
type errorRecorder struct {
	r   io.Reader
	err error
}

func (e *errorRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
