package sealed

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"testing"
)

const benchSize = 64 << 20

func BenchmarkSealedWrite(b *testing.B) {
	key := testKey(b)
	chunk := make([]byte, 64<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		w, err := NewWriter(io.Discard, key, testHeader())
		if err != nil {
			b.Fatal(err)
		}
		for range benchSize / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealedRead(b *testing.B) {
	key := testKey(b)
	var file bytes.Buffer
	w, err := NewWriter(&file, key, testHeader())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(w, &patternReader{n: benchSize}); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}

	b.SetBytes(benchSize)
	for b.Loop() {
		_, r, err := ReadHeader(bytes.NewReader(file.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		plaintext, err := r.Decrypt(key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, plaintext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAESGCMRaw seals 64 MiB with AES-256-GCM from the standard library
// in 64 KiB chunks, with no streaming layer, as the baseline for the two
// benchmarks above.
func BenchmarkAESGCMRaw(b *testing.B) {
	block, err := aes.NewCipher(testKey(b))
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}

	const chunk = 64 << 10
	plaintext := make([]byte, chunk)
	ciphertext := make([]byte, 0, chunk+gcm.Overhead())
	nonce := make([]byte, gcm.NonceSize())

	b.SetBytes(benchSize)
	for b.Loop() {
		for i := range benchSize / chunk {
			nonce[0], nonce[1] = byte(i), byte(i>>8)
			ciphertext = gcm.Seal(ciphertext[:0], nonce, plaintext, nil)
		}
	}
}
