package simsnp

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"cove.dev/cove/attest"
)

const (
	// ChainFileName is the file in the chain directory that contains the
	// test-only private keys and certificates (mode 0600).
	ChainFileName = "TEST-ONLY-sim-snp-chain.pem"
	// RootsFileName is the file in the chain directory that contains only
	// the public ASK and ARK certificates, in that order, as AMD's KDS
	// serves a cert_chain.
	RootsFileName = "TEST-ONLY-sim-snp-roots.pem"

	// roleHeader is the PEM header that names each block's role in the chain.
	roleHeader = "Cove-Sim-Snp-Role"
)

// LoadOrCreateChain loads the test-only chain stored in dir, or creates and
// stores a new one when dir has none. Processes that use the same dir,
// such as a launcher and a broker, get the same chain. When several
// processes create it at once, one chain wins and all load it.
func LoadOrCreateChain(dir string) (*Chain, error) {
	path := filepath.Join(dir, ChainFileName)
	chain, err := loadChain(path)
	if err == nil {
		return chain, writeRoots(dir, chain)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the sim-snp chain directory: %w", err)
	}
	chain, err = NewChain()
	if err != nil {
		return nil, err
	}
	if err := storeChain(path, chain); err != nil {
		return nil, err
	}
	// Load what is on disk: another process may have stored its chain first.
	chain, err = loadChain(path)
	if err != nil {
		return nil, err
	}
	return chain, writeRoots(dir, chain)
}

// LoadRoots reads the test-only roots that [LoadOrCreateChain] stored in
// dir, without the private keys, for a verifier that must not create a
// chain.
func LoadRoots(dir string) (*attest.Roots, error) {
	data, err := os.ReadFile(filepath.Join(dir, RootsFileName))
	if err != nil {
		return nil, fmt.Errorf("reading the sim-snp test-only roots: %w", err)
	}
	askBlock, rest := pem.Decode(data)
	arkBlock, _ := pem.Decode(rest)
	if askBlock == nil || arkBlock == nil {
		return nil, fmt.Errorf("%s: expected two PEM certificates, the ASK then the ARK", RootsFileName)
	}
	ask, err := x509.ParseCertificate(askBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing the ASK: %w", RootsFileName, err)
	}
	ark, err := x509.ParseCertificate(arkBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing the ARK: %w", RootsFileName, err)
	}
	return attest.NewTestOnlyRoots(ProductLine, ark, ask)
}

// storeChain writes the chain to path unless path exists. It writes a
// temporary file and hard-links it to path, so readers never see a partial
// file and a chain stored first is never replaced.
func storeChain(path string, c *Chain) error {
	data, err := encodeChain(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sim-snp-chain-*.tmp")
	if err != nil {
		return fmt.Errorf("storing the sim-snp chain: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("storing the sim-snp chain: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("storing the sim-snp chain: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("storing the sim-snp chain: %w", err)
	}
	return nil
}

func encodeChain(c *Chain) ([]byte, error) {
	keys := []struct {
		role string
		key  any
	}{{"ark-key", c.arkKey}, {"ask-key", c.askKey}, {"vcek-key", c.vcekKey}}
	var buf bytes.Buffer
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			return nil, fmt.Errorf("encoding the test-only %s: %w", k.role, err)
		}
		block := &pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{roleHeader: k.role}, Bytes: der}
		if err := pem.Encode(&buf, block); err != nil {
			return nil, err
		}
	}
	certs := []struct {
		role string
		cert *x509.Certificate
	}{{"ark", c.ARK}, {"ask", c.ASK}, {"vcek", c.VCEK}}
	for _, cert := range certs {
		block := &pem.Block{Type: "CERTIFICATE", Headers: map[string]string{roleHeader: cert.role}, Bytes: cert.cert.Raw}
		if err := pem.Encode(&buf, block); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func loadChain(path string) (*Chain, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blocks := map[string]*pem.Block{}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		blocks[block.Headers[roleHeader]] = block
	}
	key := func(role string) (any, error) {
		b, ok := blocks[role]
		if !ok || b.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("%s: no PRIVATE KEY block with %s: %s", path, roleHeader, role)
		}
		return x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	cert := func(role string) (*x509.Certificate, error) {
		b, ok := blocks[role]
		if !ok || b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: no CERTIFICATE block with %s: %s", path, roleHeader, role)
		}
		return x509.ParseCertificate(b.Bytes)
	}

	var errs []error
	arkKey, err := key("ark-key")
	errs = append(errs, err)
	askKey, err := key("ask-key")
	errs = append(errs, err)
	vcekKey, err := key("vcek-key")
	errs = append(errs, err)
	ark, err := cert("ark")
	errs = append(errs, err)
	ask, err := cert("ask")
	errs = append(errs, err)
	vcek, err := cert("vcek")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	arkRSA, ok1 := arkKey.(*rsa.PrivateKey)
	askRSA, ok2 := askKey.(*rsa.PrivateKey)
	vcekEC, ok3 := vcekKey.(*ecdsa.PrivateKey)
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("%s: expected RSA keys for the ARK and ASK and an ECDSA key for the VCEK", path)
	}
	chain, err := newChain(ark, ask, vcek, arkRSA, askRSA, vcekEC)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return chain, nil
}

// writeRoots writes the public roots file, replacing it atomically, so that
// it always matches the chain file.
func writeRoots(dir string, c *Chain) error {
	var buf bytes.Buffer
	for _, cert := range []*x509.Certificate{c.ASK, c.ARK} {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}); err != nil {
			return err
		}
	}
	path := filepath.Join(dir, RootsFileName)
	if existing, err := os.ReadFile(path); err == nil && bytes.Equal(existing, buf.Bytes()) {
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".sim-snp-roots-*.tmp")
	if err != nil {
		return fmt.Errorf("writing the sim-snp roots: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the sim-snp roots: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the sim-snp roots: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing the sim-snp roots: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the sim-snp roots: %w", err)
	}
	return nil
}
