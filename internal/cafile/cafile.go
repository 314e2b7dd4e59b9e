// Package cafile builds the TLS client configuration of Cove's command-line
// tools from a --ca-file flag.
package cafile

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig returns a client configuration that trusts the PEM
// certificates in path, or the system roots when path is empty.
func TLSConfig(path string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if path == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("--ca-file %s contains no PEM certificate", path)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
