package sealcmd

import (
	"bytes"
	"io"
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
