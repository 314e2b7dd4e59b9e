package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// fileConfig is the broker's configuration file (YAML):
//
//	listen: 127.0.0.1:8443
//	tls_cert_file: /etc/cove/kbs.pem
//	tls_key_file: /etc/cove/kbs-key.pem
//	vault:
//	  address: http://127.0.0.1:8200
//	  ca_file: ""                  # PEM CAs for Vault's TLS; empty uses system roots
//	  role_id_file: /etc/cove/vault-role-id
//	  secret_id_file: /etc/cove/vault-secret-id
//	  transit_mount: transit
//	  timeout: 3s                  # per Vault request
//	admin_token_file: /etc/cove/kbs-admin-token
//	state_dir: /var/lib/cove-kbs
//	policies_dir: /etc/cove/policies
//	session_ttl: 5m
//	insecure_trust_test_only_root: ""  # sim-snp chain folder; development only
type fileConfig struct {
	Listen      string `yaml:"listen"`
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	Vault       struct {
		Address      string        `yaml:"address"`
		CAFile       string        `yaml:"ca_file"`
		RoleIDFile   string        `yaml:"role_id_file"`
		SecretIDFile string        `yaml:"secret_id_file"`
		TransitMount string        `yaml:"transit_mount"`
		Timeout      time.Duration `yaml:"timeout"`
	} `yaml:"vault"`
	AdminTokenFile            string        `yaml:"admin_token_file"`
	StateDir                  string        `yaml:"state_dir"`
	PoliciesDir               string        `yaml:"policies_dir"`
	SessionTTL                time.Duration `yaml:"session_ttl"`
	InsecureTrustTestOnlyRoot string        `yaml:"insecure_trust_test_only_root"`
}

// parseArgs reads the configuration file named by -config, then applies
// the flags given on the command line over it.
func parseArgs(args []string) (fileConfig, error) {
	var cfg fileConfig
	fs := flag.NewFlagSet("cove-kbs", flag.ContinueOnError)
	configFile := fs.String("config", "", "YAML configuration `file`; flags override its values")
	listen := fs.String("listen", "127.0.0.1:8443", "`address` to serve HTTPS on")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `file` of the broker")
	tlsKey := fs.String("tls-key", "", "PEM private key `file` of the broker")
	vaultAddr := fs.String("vault-addr", "", "Vault `URL`, for example http://127.0.0.1:8200")
	vaultCA := fs.String("vault-ca", "", "PEM CA `file` for Vault's TLS certificate")
	roleID := fs.String("vault-role-id-file", "", "`file` containing the AppRole role id")
	secretID := fs.String("vault-secret-id-file", "", "`file` containing the AppRole secret id")
	mount := fs.String("vault-transit-mount", "transit", "mount `path` of Vault's Transit engine")
	vaultTimeout := fs.Duration("vault-timeout", 3*time.Second, "timeout of each Vault request")
	adminToken := fs.String("admin-token-file", "", "`file` containing the admin API bearer token")
	stateDir := fs.String("state-dir", "", "`folder` for policies and grants set through the admin API")
	policiesDir := fs.String("policies-dir", "", "`folder` of read-only policies (<name>.yaml)")
	sessionTTL := fs.Duration("session-ttl", 5*time.Minute, "lifetime of a session, its nonce and its token")
	insecureRoot := fs.String("insecure-trust-test-only-root", "",
		"sim-snp chain `folder` whose test-only root to trust; INSECURE, development only")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q; cove-kbs takes only flags (or: cove-kbs tls-init DIR)",
			fs.Arg(0))
	}

	cfg.Listen = *listen
	cfg.Vault.TransitMount = *mount
	cfg.Vault.Timeout = *vaultTimeout
	cfg.SessionTTL = *sessionTTL
	if *configFile != "" {
		if err := readConfigFile(*configFile, &cfg); err != nil {
			return cfg, err
		}
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	override := func(name string, dst *string, v string) {
		if set[name] {
			*dst = v
		}
	}
	override("listen", &cfg.Listen, *listen)
	override("tls-cert", &cfg.TLSCertFile, *tlsCert)
	override("tls-key", &cfg.TLSKeyFile, *tlsKey)
	override("vault-addr", &cfg.Vault.Address, *vaultAddr)
	override("vault-ca", &cfg.Vault.CAFile, *vaultCA)
	override("vault-role-id-file", &cfg.Vault.RoleIDFile, *roleID)
	override("vault-secret-id-file", &cfg.Vault.SecretIDFile, *secretID)
	override("vault-transit-mount", &cfg.Vault.TransitMount, *mount)
	override("admin-token-file", &cfg.AdminTokenFile, *adminToken)
	override("state-dir", &cfg.StateDir, *stateDir)
	override("policies-dir", &cfg.PoliciesDir, *policiesDir)
	override("insecure-trust-test-only-root", &cfg.InsecureTrustTestOnlyRoot, *insecureRoot)
	if set["vault-timeout"] {
		cfg.Vault.Timeout = *vaultTimeout
	}
	if set["session-ttl"] {
		cfg.SessionTTL = *sessionTTL
	}
	return cfg, cfg.check()
}

func readConfigFile(path string, cfg *fileConfig) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the configuration file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("configuration file %s: %v", path, err)
	}
	return nil
}

// check names every missing required setting with its flag and key.
func (c fileConfig) check() error {
	var missing []string
	need := func(v, flagName, key string) {
		if v == "" {
			missing = append(missing, fmt.Sprintf("-%s (%s)", flagName, key))
		}
	}
	need(c.TLSCertFile, "tls-cert", "tls_cert_file")
	need(c.TLSKeyFile, "tls-key", "tls_key_file")
	need(c.Vault.Address, "vault-addr", "vault.address")
	need(c.Vault.RoleIDFile, "vault-role-id-file", "vault.role_id_file")
	need(c.Vault.SecretIDFile, "vault-secret-id-file", "vault.secret_id_file")
	need(c.AdminTokenFile, "admin-token-file", "admin_token_file")
	need(c.StateDir, "state-dir", "state_dir")
	if len(missing) > 0 {
		return errors.New("missing required settings: " + strings.Join(missing, ", ") +
			"; set them as flags or in the -config file")
	}
	return nil
}
