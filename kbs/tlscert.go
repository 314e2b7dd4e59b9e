package kbs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles names the files that [WriteTestTLS] writes.
type TLSFiles struct {
	// CAFile is the PEM certificate of the CA, for clients to trust.
	CAFile string
	// CertFile and KeyFile are the broker's PEM certificate and key.
	CertFile string
	KeyFile  string
}

// TestTLSHosts are the names a [WriteTestTLS] certificate is valid for:
// loopback, and 10.0.2.100, the address at which a QEMU guest with user
// networking reaches the broker.
var TestTLSHosts = []string{"127.0.0.1", "::1", "localhost", "10.0.2.100"}

// WriteTestTLS creates a self-signed CA and a server certificate signed by
// it for [TestTLSHosts] plus extraHosts, valid for 30 days, and writes them
// as ca.pem, kbs.pem and kbs-key.pem (mode 0600) into dir. It is meant for
// tests and the demo: the CA key is discarded, so nothing else can be signed.
func WriteTestTLS(dir string, extraHosts ...string) (TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return TLSFiles{}, err
	}
	now := time.Now()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSFiles{}, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Cove test-only KBS CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSFiles{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return TLSFiles{}, err
	}

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSFiles{}, err
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "cove-kbs"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range append(append([]string{}, TestTLSHosts...), extraHosts...) {
		if ip := net.ParseIP(h); ip != nil {
			serverTemplate.IPAddresses = append(serverTemplate.IPAddresses, ip)
		} else {
			serverTemplate.DNSNames = append(serverTemplate.DNSNames, h)
		}
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		return TLSFiles{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		return TLSFiles{}, err
	}

	files := TLSFiles{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "kbs.pem"),
		KeyFile:  filepath.Join(dir, "kbs-key.pem"),
	}
	writes := []struct {
		path, blockType string
		der             []byte
		mode            os.FileMode
	}{
		{files.CAFile, "CERTIFICATE", caDER, 0o644},
		{files.CertFile, "CERTIFICATE", serverDER, 0o644},
		{files.KeyFile, "PRIVATE KEY", keyDER, 0o600},
	}
	for _, wr := range writes {
		data := pem.EncodeToMemory(&pem.Block{Type: wr.blockType, Bytes: wr.der})
		if err := writeFileAtomic(wr.path, data, wr.mode); err != nil {
			return TLSFiles{}, fmt.Errorf("writing %s: %w", wr.path, err)
		}
	}
	return files, nil
}

func randomSerial() *big.Int {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return serial
}
