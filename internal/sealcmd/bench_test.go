package sealcmd

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

// BenchmarkAgeDecrypt measures decrypting a 64 MiB age file (X25519
// recipient) from memory, for comparison with BenchmarkSealedRead and
// BenchmarkAESGCMRaw in internal/sealed.
func BenchmarkAgeDecrypt(b *testing.B) {
	const size = 64 << 20
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}

	var file bytes.Buffer
	w, err := age.Encrypt(&file, identity.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for range size / len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}

	b.SetBytes(size)
	for b.Loop() {
		plaintext, err := age.Decrypt(bytes.NewReader(file.Bytes()), identity)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, plaintext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealCommand measures cove seal on a 64 MiB file, from file to
// file, with the wrap request served by a local stand-in broker.
func BenchmarkSealCommand(b *testing.B) {
	const size = 64 << 20
	broker := newFakeBroker(b)
	run := newSealRun(b, make([]byte, size))
	b.SetBytes(size)
	for b.Loop() {
		os.Remove(run.out)
		if _, stderr, err := runSeal(run.args(broker)); err != nil {
			b.Fatalf("cove seal: %v: %s", err, stderr)
		}
	}
}

// BenchmarkUnsealCommand measures cove unseal of a 64 MiB age file, from
// file to file.
func BenchmarkUnsealCommand(b *testing.B) {
	const size = 64 << 20
	dir := b.TempDir()
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	idFile := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(idFile, []byte(identity.String()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	in := filepath.Join(dir, "result.cove")
	f, err := os.Create(in)
	if err != nil {
		b.Fatal(err)
	}
	w, err := age.Encrypt(f, identity.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.Write(make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	w.Close()
	f.Close()
	out := filepath.Join(dir, "result.csv")
	b.SetBytes(size)
	for b.Loop() {
		os.Remove(out)
		var stderr bytes.Buffer
		if err := Unseal(context.Background(), []string{"--identity", idFile, "-o", out, in}, io.Discard, &stderr); err != nil {
			b.Fatalf("cove unseal: %v: %s", err, stderr.String())
		}
	}
}
