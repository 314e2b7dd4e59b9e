package sealed

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

const testWrappedKey = "vault:v1:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zoCmHnSeDX9vyf7w=="

func testHeader() Header {
	return Header{
		Key:        "claims-2024",
		WrappedKey: testWrappedKey,
		Resource:   ResourcePath("claims-2024", testWrappedKey),
		KBS:        "https://kbs.example:8443",
		Stream:     StreamAES256GCMHKDF1MB,
	}
}

func testKey(t testing.TB) []byte {
	t.Helper()
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func seal(t testing.TB, key []byte, h Header, plaintext []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, h)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// open reads a whole sealed file and returns the first error of any step.
func open(file, key []byte) ([]byte, error) {
	_, r, err := ReadHeader(bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	plaintext, err := r.Decrypt(key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(plaintext)
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTripSizes(t *testing.T) {
	key := testKey(t)
	sizes := []int{
		0, 1, 100,
		firstPlaintextLen - 1, firstPlaintextLen, firstPlaintextLen + 1,
		firstPlaintextLen + plaintextLen,
		firstPlaintextLen + 2*plaintextLen + 12345, // 3 full segments and a partial one
	}
	for _, size := range sizes {
		plaintext := randomBytes(t, size)
		got, err := open(seal(t, key, testHeader(), plaintext), key)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("size %d: plaintext differs after round trip (got %d bytes)", size, len(got))
		}
	}
}

func TestFileLayout(t *testing.T) {
	file := seal(t, testKey(t), testHeader(), []byte("hello"))

	want := "cove-sealed/v1\n" +
		`{"kbs":"https://kbs.example:8443","key":"claims-2024",` +
		`"resource":"` + ResourcePath("claims-2024", testWrappedKey) + `",` +
		`"stream":"AES256_GCM_HKDF_1MB","wrapped_key":"` + testWrappedKey + `"}` + "\n"
	if !bytes.HasPrefix(file, []byte(want)) {
		t.Fatalf("file starts with\n%q\nexpected\n%q", file[:min(len(file), len(want))], want)
	}

	body := file[len(want):]
	if got, want := len(body), tinkHeaderSize+len("hello")+16; got != want {
		t.Errorf("body is %d bytes, expected %d (Tink header, plaintext, GCM tag)", got, want)
	}
	if body[0] != tinkHeaderSize {
		t.Errorf("body starts with %d, expected Tink header length %d", body[0], tinkHeaderSize)
	}
}

func TestReadHeaderReturnsHeader(t *testing.T) {
	file := seal(t, testKey(t), testHeader(), []byte("x"))
	h, r, err := ReadHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if h != testHeader() {
		t.Errorf("header = %+v, expected %+v", h, testHeader())
	}
	if r.Header() != h {
		t.Errorf("Reader.Header() = %+v, expected %+v", r.Header(), h)
	}
}

func TestNewWriterFillsDefaults(t *testing.T) {
	h := testHeader()
	h.Resource = ""
	h.Stream = ""
	file := seal(t, testKey(t), h, nil)

	got, _, err := ReadHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if got != testHeader() {
		t.Errorf("header = %+v, expected %+v", got, testHeader())
	}
}

func TestNewWriterRejectsInvalidInput(t *testing.T) {
	tests := []struct {
		name   string
		key    []byte
		header func(*Header)
		errSub string
	}{
		{"short key", make([]byte, 16), func(*Header) {}, "data key is 16 bytes"},
		{"bad key name", make([]byte, 32), func(h *Header) { h.Key = "Claims"; h.Resource = "" }, "header field key"},
		{"wrong resource", make([]byte, 32), func(h *Header) { h.Resource = "cove/other/abc" }, "header field resource"},
		{"not transit", make([]byte, 32), func(h *Header) { h.WrappedKey = "abc"; h.Resource = "" }, "wrapped_key"},
		{"no kbs", make([]byte, 32), func(h *Header) { h.KBS = "" }, "header field kbs"},
		{"ftp kbs", make([]byte, 32), func(h *Header) { h.KBS = "ftp://kbs.example" }, "https://"},
		{"kbs with query", make([]byte, 32), func(h *Header) { h.KBS = "https://kbs.example/?a=b" }, "query"},
		{"other stream", make([]byte, 32), func(h *Header) { h.Stream = "AES128_GCM_HKDF_4KB" }, "header field stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHeader()
			tt.header(&h)
			var buf bytes.Buffer
			_, err := NewWriter(&buf, tt.key, h)
			if err == nil {
				t.Fatal("NewWriter succeeded, expected an error")
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not mention %q", err, tt.errSub)
			}
			if buf.Len() != 0 {
				t.Errorf("NewWriter wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

func TestValidateKeyName(t *testing.T) {
	valid := []string{"a", "0", "claims", "claims-2024_v1.2", "9lives", strings.Repeat("k", 64)}
	for _, name := range valid {
		if err := ValidateKeyName(name); err != nil {
			t.Errorf("ValidateKeyName(%q) = %v, expected nil", name, err)
		}
	}

	invalid := []string{
		"", "-a", "_a", ".a", "Claims", "a/b", "a b", "a:b", "ä", "a\n",
		strings.Repeat("k", 65),
	}
	for _, name := range invalid {
		if err := ValidateKeyName(name); err == nil {
			t.Errorf("ValidateKeyName(%q) = nil, expected an error", name)
		}
	}
}

func TestResourcePathRoundTrip(t *testing.T) {
	wrapped := "vault:v12:ab+/cd=="
	path := ResourcePath("k1", wrapped)
	if strings.Count(path, "/") != 2 || strings.ContainsAny(path, "+=") {
		t.Errorf("ResourcePath = %q, expected three segments in base64url without padding", path)
	}

	key, got, err := ParseResourcePath(path)
	if err != nil {
		t.Fatal(err)
	}
	if key != "k1" {
		t.Errorf("key = %q, expected %q", key, "k1")
	}
	if got != wrapped {
		t.Errorf("wrapped = %q, expected %q", got, wrapped)
	}
}

func TestParseResourcePathRejectsInvalid(t *testing.T) {
	good := base64URL(testWrappedKey)
	tests := []string{
		"",
		"cove/k1",
		"other/k1/" + good,
		"cove/K1/" + good,
		"cove/k1/" + good + "/extra",
		"cove/k1/" + good + "=",               // padding
		"cove/k1/" + good[:len(good)-1] + "+", // not the URL alphabet
		"cove/k1/" + base64URL("not-transit"),
		"cove//" + good,
	}
	for _, path := range tests {
		if _, _, err := ParseResourcePath(path); err == nil {
			t.Errorf("ParseResourcePath(%q) succeeded, expected an error", path)
		}
	}
}

func base64URL(s string) string {
	return strings.TrimPrefix(ResourcePath("x", s), "cove/x/")
}

func TestReadHeaderRejectsInvalidHeaders(t *testing.T) {
	valid := seal(t, testKey(t), testHeader(), []byte("x"))
	line1, rest, _ := bytes.Cut(valid, []byte("\n"))
	line2, body, _ := bytes.Cut(rest, []byte("\n"))
	withLine2 := func(s string) []byte {
		return []byte(string(line1) + "\n" + s + "\n" + string(body))
	}
	goodResource := ResourcePath("claims-2024", testWrappedKey)

	tests := []struct {
		name   string
		file   []byte
		errSub string
	}{
		{"empty file", nil, "file is empty"},
		{"other magic", []byte("age-encryption.org/v1\n..."), "not a sealed file"},
		{"unknown version", []byte("cove-sealed/v2\n" + string(line2) + "\n"), "unsupported sealed format version"},
		{"no header line", []byte("cove-sealed/v1\n"), "ends inside line 2"},
		{"header not JSON", withLine2("key=claims"), "not a valid header"},
		{"unknown field", withLine2(strings.Replace(string(line2), `{"kbs"`, `{"extra":"1","kbs"`, 1)),
			"unknown field"},
		{"not canonical", withLine2(strings.Replace(string(line2), `,"key"`, `, "key"`, 1)), "not canonical"},
		{"bad resource", withLine2(strings.Replace(string(line2), goodResource, "cove/claims-2024/AAAA", 1)),
			"header field resource"},
		{"bad key name", withLine2(strings.ReplaceAll(string(line2), "claims-2024", "Claims-2024")),
			"header field key"},
		{"missing stream", withLine2(strings.Replace(string(line2), `"stream":"AES256_GCM_HKDF_1MB",`, "", 1)),
			"header field stream"},
		{"header too long", withLine2(strings.Repeat("x", maxHeaderLine)), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadHeader(bytes.NewReader(tt.file))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not mention %q", err, tt.errSub)
			}
		})
	}
}

func TestUnknownVersionIsUnsupported(t *testing.T) {
	_, _, err := ReadHeader(strings.NewReader("cove-sealed/v2\n{}\n"))
	if !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("error %v does not wrap ErrUnsupportedVersion", err)
	}
}

func TestWrongKeyIsCorrupt(t *testing.T) {
	file := seal(t, testKey(t), testHeader(), []byte("secret claims"))
	_, err := open(file, testKey(t))
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("error %v does not wrap ErrCorrupt", err)
	}
}

// multiSegmentFile returns a sealed file of 3 full segments and a partial
// fourth, the size of its header lines, and its plaintext.
func multiSegmentFile(t *testing.T, key []byte) (file []byte, headerLen int, plaintext []byte) {
	t.Helper()
	plaintext = randomBytes(t, firstPlaintextLen+2*plaintextLen+5000)
	file = seal(t, key, testHeader(), plaintext)
	lines, err := headerLines(testHeader())
	if err != nil {
		t.Fatal(err)
	}
	return file, len(lines), plaintext
}

func TestMultiSegmentFileLayout(t *testing.T) {
	key := testKey(t)
	file, headerLen, plaintext := multiSegmentFile(t, key)

	// Segments 0 to 2 are full: SegmentSize bytes each, the first
	// including the Tink header. Segment 3 holds the last 5000 bytes.
	if got, want := len(file), headerLen+3*SegmentSize+5000+16; got != want {
		t.Fatalf("file is %d bytes, expected %d", got, want)
	}

	got, err := open(file, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Fatal("plaintext differs after round trip")
	}
}

func TestTruncationIsCorrupt(t *testing.T) {
	key := testKey(t)
	file, headerLen, _ := multiSegmentFile(t, key)

	cuts := map[string]int{
		"inside line 1":          5,
		"after line 1":           len(VersionLine) + 1,
		"inside line 2":          headerLen - 10,
		"after line 2":           headerLen,
		"inside Tink header":     headerLen + 20,
		"after Tink header":      headerLen + tinkHeaderSize,
		"inside first segment":   headerLen + 1000,
		"at segment 1 boundary":  headerLen + SegmentSize,
		"at segment 2 boundary":  headerLen + 2*SegmentSize,
		"at segment 3 boundary":  headerLen + 3*SegmentSize,
		"one byte after segment": headerLen + 3*SegmentSize + 1,
		"inside last segment":    len(file) - 100,
		"last byte removed":      len(file) - 1,
	}
	for name, n := range cuts {
		t.Run(name, func(t *testing.T) {
			_, err := open(file[:n], key)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("reading %d of %d bytes: error %v does not wrap ErrCorrupt", n, len(file), err)
			}
		})
	}
}

func TestAppendedBytesAreCorrupt(t *testing.T) {
	key := testKey(t)
	file := seal(t, key, testHeader(), []byte("claims"))
	_, err := open(append(file, 0), key)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("error %v does not wrap ErrCorrupt", err)
	}
}

func TestReorderedSegmentsAreCorrupt(t *testing.T) {
	key := testKey(t)
	file, headerLen, _ := multiSegmentFile(t, key)
	segment := func(i int) []byte {
		start := headerLen + i*SegmentSize
		return file[start : start+SegmentSize]
	}

	swapped := bytes.Clone(file)
	copy(swapped[headerLen+SegmentSize:], segment(2))
	copy(swapped[headerLen+2*SegmentSize:], segment(1))

	_, r, err := ReadHeader(bytes.NewReader(swapped))
	if err != nil {
		t.Fatal(err)
	}
	plaintext, err := r.Decrypt(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, plaintext)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	if n != firstPlaintextLen {
		t.Errorf("read %d plaintext bytes before the error, expected segment 0 only (%d)", n, firstPlaintextLen)
	}
	if !strings.Contains(err.Error(), "segment 1 ") {
		t.Errorf("error %q does not name segment 1", err)
	}
}

func TestSegmentFromOtherFileIsCorrupt(t *testing.T) {
	key := testKey(t)
	file, headerLen, _ := multiSegmentFile(t, key)
	other, _, _ := multiSegmentFile(t, key)

	mixed := bytes.Clone(file)
	start := headerLen + SegmentSize
	copy(mixed[start:start+SegmentSize], other[start:start+SegmentSize])
	if _, err := open(mixed, key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("error %v does not wrap ErrCorrupt", err)
	}
}

func TestEveryFlippedByteIsCorrupt(t *testing.T) {
	key := testKey(t)
	file := seal(t, key, testHeader(), []byte("claim_id,amount\nC1,12.50\n"))

	for i := range file {
		for _, mask := range []byte{0x01, 0x80} {
			flipped := bytes.Clone(file)
			flipped[i] ^= mask
			if _, err := open(flipped, key); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d of %d XOR %#x: error %v does not wrap ErrCorrupt", i, len(file), mask, err)
			}
		}
	}
}

func TestFlippedByteInLaterSegmentIsCorrupt(t *testing.T) {
	key := testKey(t)
	file, headerLen, _ := multiSegmentFile(t, key)

	positions := []int{
		headerLen + SegmentSize - 1, // last byte (GCM tag) of segment 0
		headerLen + SegmentSize,     // first byte of segment 1
		headerLen + 2*SegmentSize + SegmentSize/2,
		len(file) - 1,
	}
	for _, pos := range positions {
		file[pos] ^= 0x01
		if _, err := open(file, key); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d flipped: error %v does not wrap ErrCorrupt", pos, err)
		}
		file[pos] ^= 0x01
	}
}

type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestReadErrorIsNotCorrupt(t *testing.T) {
	key := testKey(t)
	file, headerLen, _ := multiSegmentFile(t, key)
	diskErr := errors.New("disk failure")

	for _, at := range []int{headerLen - 5, headerLen + 10, headerLen + SegmentSize + 10} {
		src := &failingReader{r: bytes.NewReader(file), n: at, err: diskErr}
		_, r, err := ReadHeader(src)
		if err == nil {
			var plaintext io.Reader
			plaintext, err = r.Decrypt(key)
			if err == nil {
				_, err = io.Copy(io.Discard, plaintext)
			}
		}
		if !errors.Is(err, diskErr) {
			t.Errorf("failure at byte %d: error %v does not wrap the read error", at, err)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Errorf("failure at byte %d: error %v wraps ErrCorrupt", at, err)
		}
	}
}

func TestDecryptTwiceFails(t *testing.T) {
	key := testKey(t)
	_, r, err := ReadHeader(bytes.NewReader(seal(t, key, testHeader(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decrypt(key); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decrypt(key); err == nil {
		t.Error("second Decrypt succeeded, expected an error")
	}
}

// patternReader returns n bytes without storing them.
type patternReader struct{ n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte(i)
	}
	p.n -= int64(len(b))
	return len(b), nil
}

func TestMemoryIndependentOfSize(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 64 MiB")
	}
	key := testKey(t)

	// Encrypting into a pipe and decrypting from it never holds the
	// file, so the bytes allocated must not grow with its size.
	allocated := func(size int64) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)

		pr, pw := io.Pipe()
		go func() {
			w, err := NewWriter(pw, key, testHeader())
			if err == nil {
				_, err = io.Copy(w, &patternReader{n: size})
			}
			if err == nil {
				err = w.Close()
			}
			pw.CloseWithError(err)
		}()
		_, r, err := ReadHeader(pr)
		if err != nil {
			t.Fatal(err)
		}
		plaintext, err := r.Decrypt(key)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, plaintext)
		if err != nil || n != size {
			t.Fatalf("read %d of %d bytes: %v", n, size, err)
		}

		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}

	small := allocated(2 << 20)
	large := allocated(64 << 20)
	t.Logf("allocated %d bytes for 2 MiB, %d bytes for 64 MiB", small, large)
	if large > small+(2<<20) {
		t.Errorf("sealing and reading 64 MiB allocated %d bytes, 2 MiB allocated %d: memory grows with size",
			large, small)
	}
}
