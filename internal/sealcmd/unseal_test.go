package sealcmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// ageFile encrypts plaintext to recipient and writes it to dir/result.cove.
func ageFile(t *testing.T, dir string, recipient age.Recipient, plaintext []byte) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "result.cove")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// keygen runs Keygen -o dir/key.txt and returns the identity file path and
// the recipient it printed.
func keygen(t *testing.T, dir string) (identityFile string, recipient *age.X25519Recipient) {
	t.Helper()
	identityFile = filepath.Join(dir, "key.txt")
	var stdout bytes.Buffer
	if err := Keygen(context.Background(), []string{"-o", identityFile}, &stdout, io.Discard); err != nil {
		t.Fatalf("Keygen: %v", err)
	}
	recipient, err := age.ParseX25519Recipient(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("Keygen printed %q, expected a recipient: %v", stdout.String(), err)
	}
	return identityFile, recipient
}

func runUnseal(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = Unseal(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestKeygenWritesPrivateIdentityFile(t *testing.T) {
	dir := t.TempDir()
	identityFile, recipient := keygen(t, dir)

	info, err := os.Stat(identityFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("identity file mode = %o, expected 600", perm)
	}

	content, err := os.ReadFile(identityFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(content), "# public key: "+recipient.String()+"\n") {
		t.Errorf("identity file does not contain the public key comment:\n%s", content)
	}
	identities, err := age.ParseIdentities(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	x25519, ok := identities[0].(*age.X25519Identity)
	if len(identities) != 1 || !ok {
		t.Fatalf("identity file holds %d identities of type %T, expected one X25519 identity",
			len(identities), identities[0])
	}
	if x25519.Recipient().String() != recipient.String() {
		t.Errorf("printed recipient %s does not match the identity's %s", recipient, x25519.Recipient())
	}
}

func TestKeygenRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}

	err := Keygen(context.Background(), []string{"-o", path}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error = %v, expected an already exists error", err)
	}
	if content, _ := os.ReadFile(path); string(content) != "keep me" {
		t.Errorf("existing file now contains %q", content)
	}
}

func TestKeygenToStandardOutput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Keygen(context.Background(), nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	identities, err := age.ParseIdentities(&stdout)
	if err != nil {
		t.Fatalf("standard output is not an identity file: %v", err)
	}
	want := "Public key: " + identities[0].(*age.X25519Identity).Recipient().String() + "\n"
	if stderr.String() != want {
		t.Errorf("standard error = %q, expected %q", stderr.String(), want)
	}
}

func TestUnsealToStandardOutput(t *testing.T) {
	dir := t.TempDir()
	identityFile, recipient := keygen(t, dir)
	result := ageFile(t, dir, recipient, []byte("diagnosis_code,claims,total_amount\nE11.9,2,300.00\n"))

	stdout, _, err := runUnseal("--identity", identityFile, result)
	if err != nil {
		t.Fatal(err)
	}
	if want := "diagnosis_code,claims,total_amount\nE11.9,2,300.00\n"; stdout != want {
		t.Errorf("standard output = %q, expected %q", stdout, want)
	}
}

func TestUnsealToFile(t *testing.T) {
	dir := t.TempDir()
	identityFile, recipient := keygen(t, dir)
	plaintext := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB, several age chunks
	result := ageFile(t, dir, recipient, plaintext)
	out := filepath.Join(dir, "totals.csv")

	stdout, _, err := runUnseal(result, "--identity", identityFile, "-o", out)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != "" {
		t.Errorf("standard output = %q, expected nothing with -o", stdout)
	}

	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Errorf("output has %d bytes that differ from the %d-byte plaintext", len(got), len(plaintext))
	}
	info, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("output mode = %o, expected 600", perm)
	}
}

func TestUnsealAcceptsCommentedIdentityFile(t *testing.T) {
	dir := t.TempDir()
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	mine, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identityFile := filepath.Join(dir, "keys.txt")
	content := "# team key\n" + other.String() + "\n\n# my key\n" + mine.String() + "\n"
	if err := os.WriteFile(identityFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	result := ageFile(t, dir, mine.Recipient(), []byte("ok"))

	stdout, _, err := runUnseal("--identity", identityFile, result)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != "ok" {
		t.Errorf("standard output = %q, expected %q", stdout, "ok")
	}
}

func TestUnsealWrongIdentity(t *testing.T) {
	dir := t.TempDir()
	identityFile, _ := keygen(t, dir)
	stranger, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	result := ageFile(t, dir, stranger.Recipient(), []byte("secret"))
	out := filepath.Join(dir, "out.csv")

	_, _, err = runUnseal("--identity", identityFile, "-o", out, result)
	if err == nil || !strings.Contains(err.Error(), "encrypted to another recipient") {
		t.Errorf("error = %v, expected a no matching identity error", err)
	}
	assertNoOutput(t, out)
}

func TestUnsealCorruptFileLeavesNoOutput(t *testing.T) {
	dir := t.TempDir()
	identityFile, recipient := keygen(t, dir)
	plaintext := bytes.Repeat([]byte("x"), 200000) // 4 age chunks of 64 KiB
	result := ageFile(t, dir, recipient, plaintext)
	data, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string][]byte{
		"truncated":    data[:len(data)-10],
		"flipped body": flipByte(data, len(data)-70000),
		"not age":      []byte("cove-sealed/v1\n{}\n"),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(result, content, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.csv")
			_, _, err := runUnseal("--identity", identityFile, "-o", out, result)
			if err == nil || !strings.Contains(err.Error(), "decrypting") {
				t.Errorf("error = %v, expected a decryption error", err)
			}
			assertNoOutput(t, out)
		})
	}
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestUnsealUsageErrors(t *testing.T) {
	dir := t.TempDir()
	identityFile, recipient := keygen(t, dir)
	result := ageFile(t, dir, recipient, []byte("x"))
	badIdentity := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(badIdentity, []byte("# only a comment\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		errSub string
	}{
		{"no input", []string{"--identity", identityFile}, "missing job output file"},
		{"two inputs", []string{"--identity", identityFile, result, result}, "expected one job output file"},
		{"no identity", []string{result}, "missing --identity"},
		{"identity missing", []string{"--identity", filepath.Join(dir, "absent"), result}, "reading --identity"},
		{"identity empty", []string{"--identity", badIdentity, result}, "no identities found"},
		{"input missing", []string{"--identity", identityFile, filepath.Join(dir, "absent.cove")},
			"opening job output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runUnseal(tt.args...)
			if err == nil {
				t.Fatal("Unseal succeeded, expected an error")
			}
			if !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error %q does not mention %q", err, tt.errSub)
			}
		})
	}
}

func TestWriteFileAtomicallyRemovesPartialOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	failure := errors.New("input failed")

	err := writeFileAtomically(path, 0o600, func(w io.Writer) error {
		io.WriteString(w, "half")
		return failure
	})
	if !errors.Is(err, failure) {
		t.Errorf("error = %v, expected the write error", err)
	}
	assertNoOutput(t, path)
}

func TestWriteFileAtomicallyResetsStalePartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path+".partial", []byte("stale content, longer than the new one"), 0o666); err != nil {
		t.Fatal(err)
	}

	err := writeFileAtomically(path, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, "new")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "new" {
		t.Errorf("file contains %q, expected %q", got, "new")
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %o, expected 600", perm)
	}
}
