// Package vaulttest starts real HashiCorp Vault servers on loopback for
// Cove's tests and demo, and configures them the way the key broker
// expects: a Transit engine and an AppRole login limited to Transit.
//
// [Dev] starts an in-memory server whose data is lost when it stops.
// [Persistent] starts a server with file storage that it initializes and
// unseals itself, so [Server.Stop] and [Server.Start] keep its keys.
// [Server.Pause] and [Server.Resume] freeze and thaw the process to test
// how clients behave while Vault does not respond.
package vaulttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Mode selects how a [Server] stores its data.
type Mode int

const (
	// ModeDev runs `vault server -dev`: in memory, unsealed, with a fixed
	// root token. A restart loses every key and role.
	ModeDev Mode = iota
	// ModePersistent runs Vault with file storage and a TCP listener. The
	// first start initializes it with one unseal key; every start unseals it.
	ModePersistent
)

// startTimeout bounds how long a start waits for Vault to become active.
const startTimeout = 60 * time.Second

// Server is one Vault server process on 127.0.0.1.
type Server struct {
	// Addr is the server's URL, for example "http://127.0.0.1:38211".
	Addr string
	// RootToken is the root token: the dev root token id, or the token
	// returned by operator init in persistent mode.
	RootToken string

	mode      Mode
	binary    string
	dir       string
	port      int
	unsealKey string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// Launch starts a Vault server from binary with its files (configuration,
// storage, log) under dir, and waits until it is active. It needs no
// testing.T, so the demo can call it too.
func Launch(ctx context.Context, binary, dir string, mode Mode) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:   "http://127.0.0.1:" + strconv.Itoa(port),
		mode:   mode,
		binary: binary,
		dir:    dir,
		port:   port,
	}
	if mode == ModeDev {
		s.RootToken = "cove-dev-root-" + strconv.Itoa(port)
	} else if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the folder that contains the server's configuration, storage
// and log file (vault.log).
func (s *Server) Dir() string { return s.dir }

// Start starts the server process again after [Server.Stop], on the same
// port, and waits until it is active. In persistent mode it initializes
// the storage on the first start and unseals it on every start.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.cmd != nil {
		return errors.New("vaulttest: server is already running")
	}
	logFile, err := os.OpenFile(filepath.Join(s.dir, "vault.log"),
		os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.binary, s.args()...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Vault's CLI stores tokens in $HOME/.vault-token; keep that file in
	// the server's folder instead of the user's home.
	cmd.Env = append(os.Environ(), "HOME="+s.dir, "VAULT_ADDR="+s.Addr)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("vaulttest: starting %s: %w", s.binary, err)
	}
	s.cmd = cmd
	s.log = logFile

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := s.becomeActive(ctx); err != nil {
		s.stopLocked()
		return fmt.Errorf("vaulttest: %w; end of %s:\n%s",
			err, logFile.Name(), logTail(logFile.Name()))
	}
	return nil
}

// Stop ends the server process with SIGTERM and waits for it to exit. A
// paused server is resumed first so that it can shut down.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	defer s.log.Close()

	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("vaulttest: server did not exit within 15s of SIGTERM and was killed")
	}
}

// Pause freezes the server process with SIGSTOP and waits until all its
// threads are stopped. Connections to its port are still accepted by the
// kernel, but no request gets a response.
func (s *Server) Pause() error {
	if err := s.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	// A thread running on another CPU stops a moment after kill returns.
	deadline := time.Now().Add(5 * time.Second)
	for !allThreadsStopped(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("vaulttest: process %d did not stop within 5s of SIGSTOP", pid)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped by a signal), as Linux shows in /proc/<pid>/task/<tid>/stat.
func allThreadsStopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 || i+2 >= len(data) || data[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Resume thaws a paused server with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("vaulttest: server is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// Client returns a Vault API client for the server authenticated with the
// root token.
func (s *Server) Client() (*vault.Client, error) {
	return newClient(s.Addr, s.RootToken)
}

func (s *Server) args() []string {
	if s.mode == ModeDev {
		return []string{"server", "-dev",
			"-dev-root-token-id=" + s.RootToken,
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(s.port),
			"-dev-no-store-token",
		}
	}
	return []string{"server", "-config=" + filepath.Join(s.dir, "vault.hcl")}
}

func (s *Server) writeConfig() error {
	storage := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return err
	}
	config := fmt.Sprintf(`storage "file" {
  path = %q
}

listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}

api_addr      = %q
disable_mlock = true
ui            = false
`, storage, s.port, s.Addr)
	return os.WriteFile(filepath.Join(s.dir, "vault.hcl"), []byte(config), 0o600)
}

// becomeActive waits for the listener, initializes and unseals persistent
// storage as needed, and waits until the server is active and unsealed.
func (s *Server) becomeActive(ctx context.Context) error {
	client, err := newClient(s.Addr, "")
	if err != nil {
		return err
	}
	for {
		health, err := client.Sys().HealthWithContext(ctx)
		switch {
		case err != nil:
			// Not listening yet.
		case !health.Initialized && s.mode == ModePersistent:
			if err := s.initialize(ctx, client); err != nil {
				return err
			}
			continue
		case health.Sealed && s.mode == ModePersistent:
			if s.unsealKey == "" {
				return errors.New("server is sealed and no unseal key is known")
			}
			if _, err := client.Sys().UnsealWithContext(ctx, s.unsealKey); err != nil {
				return fmt.Errorf("unsealing: %w", err)
			}
			continue
		case health.Initialized && !health.Sealed && !health.Standby:
			return waitForTokenStore(ctx, s.Addr, s.RootToken)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s did not become active: %w", s.Addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) initialize(ctx context.Context, client *vault.Client) error {
	resp, err := client.Sys().InitWithContext(ctx, &vault.InitRequest{
		SecretShares:    1,
		SecretThreshold: 1,
	})
	if err != nil {
		return fmt.Errorf("operator init: %w", err)
	}
	s.unsealKey = resp.KeysB64[0]
	s.RootToken = resp.RootToken
	return nil
}

// waitForTokenStore waits until the root token is accepted: right after
// unsealing, an active node can still reject requests for a moment.
func waitForTokenStore(ctx context.Context, addr, token string) error {
	client, err := newClient(addr, token)
	if err != nil {
		return err
	}
	for {
		_, err := client.Auth().Token().LookupSelfWithContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("root token not accepted at %s: %v", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func newClient(addr, token string) (*vault.Client, error) {
	config := vault.DefaultConfig()
	config.Address = addr
	config.MaxRetries = 0
	config.Timeout = 5 * time.Second
	client, err := vault.NewClient(config)
	if err != nil {
		return nil, err
	}
	// NewClient reads VAULT_TOKEN from the environment; use only ours.
	client.ClearToken()
	if token != "" {
		client.SetToken(token)
	}
	return client, nil
}

// logTail returns the last 2 KiB of the log file at path.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > 2048 {
		data = data[len(data)-2048:]
	}
	return string(data)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
