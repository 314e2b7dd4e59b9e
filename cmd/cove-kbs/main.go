// Command cove-kbs is Cove's key broker. It serves the KBS protocol 0.4.0
// and the admin API over HTTPS and unwraps data keys with Vault Transit.
//
// Usage:
//
//	cove-kbs -config /etc/cove/kbs.yaml [flags]
//	cove-kbs tls-init DIR
//
// Flags override the values of the configuration file. tls-init writes a
// test-only CA and a server certificate for 127.0.0.1, localhost and
// 10.0.2.100 into DIR, for tests and the demo.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/kbs"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "tls-init" {
		os.Exit(tlsInit(os.Args[2:]))
	}
	cfg, err := parseArgs(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "cove-kbs:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger, nil); err != nil {
		logger.Error("broker stopped", "error", err)
		os.Exit(1)
	}
}

func tlsInit(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: cove-kbs tls-init DIR")
		return 2
	}
	files, err := kbs.WriteTestTLS(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "cove-kbs tls-init:", err)
		return 1
	}
	fmt.Printf("ca_file: %s\ntls_cert_file: %s\ntls_key_file: %s\n", files.CAFile, files.CertFile, files.KeyFile)
	return 0
}

// run serves the broker until ctx ends, then shuts it down gracefully.
// When ready is not nil, run sends it the listening address once it serves.
func run(ctx context.Context, cfg fileConfig, logger *slog.Logger, ready chan<- string) error {
	brokerCfg, err := cfg.brokerConfig(logger)
	if err != nil {
		return err
	}
	server, err := kbs.New(brokerCfg)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("loading the TLS certificate %s and key %s: %w",
			cfg.TLSCertFile, cfg.TLSKeyFile, err)
	}
	listener, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	httpServer := &http.Server{
		Handler:           server,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	errs := make(chan error, 1)
	go func() { errs <- httpServer.ServeTLS(listener, "", "") }()
	logger.Info("broker started", "listen", listener.Addr().String(), "vault", cfg.Vault.Address,
		"state_dir", cfg.StateDir, "policies_dir", cfg.PoliciesDir)
	if ready != nil {
		ready <- listener.Addr().String()
	}

	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	logger.Info("broker stopping")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return httpServer.Shutdown(shutdown)
}

// brokerConfig turns the file configuration into the broker's.
func (c fileConfig) brokerConfig(logger *slog.Logger) (kbs.Config, error) {
	cfg := kbs.Config{
		Vault: kbs.VaultConfig{
			Address:      c.Vault.Address,
			CACertFile:   c.Vault.CAFile,
			RoleIDFile:   c.Vault.RoleIDFile,
			SecretIDFile: c.Vault.SecretIDFile,
			TransitMount: c.Vault.TransitMount,
			Timeout:      c.Vault.Timeout,
		},
		AdminTokenFile: c.AdminTokenFile,
		StateDir:       c.StateDir,
		PoliciesDir:    c.PoliciesDir,
		SessionTTL:     c.SessionTTL,
		Logger:         logger,
	}
	if c.InsecureTrustTestOnlyRoot != "" {
		roots, err := simsnp.LoadRoots(c.InsecureTrustTestOnlyRoot)
		if err != nil {
			return kbs.Config{}, fmt.Errorf("insecure_trust_test_only_root %s: %w",
				c.InsecureTrustTestOnlyRoot, err)
		}
		cfg.InsecureTestOnlyRoots = roots
	}
	return cfg, nil
}
