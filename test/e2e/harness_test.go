package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"cove.dev/cove/attest/simsnp"
	"cove.dev/cove/examples/claims/claimsdata"
	agent "cove.dev/cove/guest-agent"
	"cove.dev/cove/hypervisor"
	"cove.dev/cove/internal/initramfs"
	"cove.dev/cove/internal/jobspec"
	"cove.dev/cove/internal/launcher"
	"cove.dev/cove/internal/sealcmd"
	"cove.dev/cove/internal/testenv"
	"cove.dev/cove/kbs"
	"cove.dev/cove/test/vaulttest"
)

// guestImage is the guest built once per test binary: the cove binary (for
// the forwarder), and an initramfs with cove-agent and the claims workload.
type guestImage struct {
	cove, initrd, kernel string
}

var (
	imageOnce sync.Once
	image     guestImage
	imageErr  error
	imageDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cove-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	imageDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// moduleRoot is the folder of go.mod, two levels above this file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = moduleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return nil
}

// buildImage builds the guest once; every VM test shares it.
func buildImage(t testing.TB) guestImage {
	t.Helper()
	kernel, modules := testenv.Kernel(t)
	testenv.QEMU(t)
	busybox := testenv.File(t, "COVE_BUSYBOX", "/bin/busybox")
	imageOnce.Do(func() {
		image.kernel = kernel
		image.cove = filepath.Join(imageDir, "cove")
		for out, pkg := range map[string]string{
			image.cove:                            "./cmd/cove",
			filepath.Join(imageDir, "cove-agent"): "./cmd/cove-agent",
			filepath.Join(imageDir, "totals"):     "./examples/claims/totals",
		} {
			if imageErr = goBuild(out, pkg); imageErr != nil {
				return
			}
		}
		spec, err := agent.InitramfsSpec(filepath.Join(imageDir, "cove-agent"), busybox, modules,
			initramfs.File{Path: "/usr/bin/claims-totals", Source: filepath.Join(imageDir, "totals"), Mode: 0o755})
		if err != nil {
			imageErr = err
			return
		}
		image.initrd = filepath.Join(imageDir, "initrd.img")
		imageErr = initramfs.WriteFile(image.initrd, spec)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return image
}

// syncBuffer collects the broker's log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one broker with its own Vault, TLS certificates and sim-snp key
// chain, plus the folder a job lives in.
type env struct {
	t          testing.TB
	dir        string
	vault      *vaulttest.Server
	kbsURL     string
	tls        kbs.TLSFiles
	adminToken string
	simDir     string
	log        *syncBuffer
	http       *http.Client
	identity   *age.X25519Identity
}

type envOptions struct {
	persistentVault bool
	// distrustTestRoot starts the broker without trusting the sim-snp
	// device's test-only root.
	distrustTestRoot bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), log: &syncBuffer{}}
	if o.persistentVault {
		e.vault = vaulttest.Persistent(t)
	} else {
		e.vault = vaulttest.Dev(t)
	}
	role := e.vault.SetupBroker(t)
	if err := os.Mkdir(filepath.Join(e.dir, "approle"), 0o700); err != nil {
		t.Fatal(err)
	}
	roleID, secretID, err := role.WriteFiles(filepath.Join(e.dir, "approle"))
	if err != nil {
		t.Fatal(err)
	}
	e.tls, err = kbs.WriteTestTLS(filepath.Join(e.dir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	e.adminToken = "test-only-admin-token-0123456789"
	tokenFile := filepath.Join(e.dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(e.adminToken), 0o600); err != nil {
		t.Fatal(err)
	}
	e.simDir = filepath.Join(e.dir, "sim-snp")
	chain, err := simsnp.LoadOrCreateChain(e.simDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := kbs.Config{
		Vault: kbs.VaultConfig{
			Address:      e.vault.Addr,
			RoleIDFile:   roleID,
			SecretIDFile: secretID,
			Timeout:      2 * time.Second,
		},
		AdminTokenFile: tokenFile,
		StateDir:       filepath.Join(e.dir, "kbs-state"),
		Logger:         slog.New(slog.NewJSONHandler(e.log, nil)),
	}
	if !o.distrustTestRoot {
		cfg.InsecureTestOnlyRoots = chain.Roots()
	}
	broker, err := kbs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(e.tls.CertFile, e.tls.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: broker, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	e.kbsURL = "https://" + l.Addr().String()

	caPEM, err := os.ReadFile(e.tls.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	e.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}

	e.identity, err = age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", e.log.String())
		}
	})
	return e
}

// admin sends one admin API request and fails the test unless it
// succeeds.
func (e *env) admin(method, path, contentType string, body []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.kbsURL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
}

// sealClaims creates the Transit key, writes rows of synthetic claims and
// seals them with cove seal. It returns the plaintext.
func (e *env) sealClaims(key string, rows int) []byte {
	e.t.Helper()
	e.admin(http.MethodPost, "/admin/v0/keys/"+key, "", nil)
	var plain bytes.Buffer
	if err := claimsdata.Generate(&plain, rows, 1); err != nil {
		e.t.Fatal(err)
	}
	in := filepath.Join(e.dir, "claims.csv")
	if err := os.WriteFile(in, plain.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := sealcmd.Seal(context.Background(), []string{
		"--kbs", e.kbsURL, "--key", key, "--token-file", filepath.Join(e.dir, "admin-token"),
		"--ca-file", e.tls.CAFile, "-o", filepath.Join(e.dir, "claims.csv.cove"), in,
	}, io.Discard, &stderr)
	if err != nil {
		e.t.Fatalf("cove seal: %v: %s", err, stderr.String())
	}
	return plain.Bytes()
}

// writeJob writes a job spec for the claims totals job and prepares it.
func (e *env) writeJob(img guestImage, edit func(*jobspec.Spec)) *launcher.Plan {
	e.t.Helper()
	spec := &jobspec.Spec{
		Version: 1,
		Name:    "claims-totals",
		Guest: jobspec.Guest{
			Kernel:    img.kernel,
			Initrd:    img.initrd,
			Cmdline:   "console=ttyS0 panic=-1 loglevel=4",
			Firmware:  testenv.OVMF(e.t),
			VCPUs:     1,
			MemoryMiB: 512,
		},
		TEE:     jobspec.TEESimSNP,
		Inputs:  []jobspec.Input{{Name: "claims", Path: filepath.Join(e.dir, "claims.csv.cove")}},
		Command: []string{"/usr/bin/claims-totals", "/run/cove/inputs/claims"},
		Output:  jobspec.Output{Recipient: e.identity.Recipient().String()},
		KBS:     jobspec.KBS{URL: e.kbsURL, CAFile: e.tls.CAFile},
		Dir:     e.dir,
	}
	if edit != nil {
		edit(spec)
	}
	if err := spec.Validate(); err != nil {
		e.t.Fatal(err)
	}
	plan, err := launcher.Prepare(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	return plan
}

// grant sets a policy expecting measurement and grants key to the job
// digests.
func (e *env) grant(key, measurement string, digests ...string) {
	e.t.Helper()
	policy := fmt.Sprintf("measurements: [%s]\nallow_debug: false\ninsecure_allow_test_only_root: true\n", measurement)
	e.admin(http.MethodPut, "/admin/v0/policies/claims-policy", "application/yaml", []byte(policy))
	quoted := make([]string, len(digests))
	for i, d := range digests {
		quoted[i] = `"` + d + `"`
	}
	body := fmt.Sprintf(`{"policy":"claims-policy","job_digests":[%s]}`, strings.Join(quoted, ","))
	e.admin(http.MethodPut, "/admin/v0/grants/"+key, "application/json", []byte(body))
}

// run launches the plan in a QEMU VM with the sim-snp device.
func (e *env) run(img guestImage, plan *launcher.Plan, device launcher.Device) (*launcher.Result, string, error) {
	e.t.Helper()
	if device == nil {
		var err error
		device, err = launcher.NewSimSNPDevice(e.simDir, plan)
		if err != nil {
			e.t.Fatal(err)
		}
	}
	caPEM, err := os.ReadFile(e.tls.CAFile)
	if err != nil {
		e.t.Fatal(err)
	}
	addr := strings.TrimPrefix(e.kbsURL, "https://")
	output := filepath.Join(e.dir, "claims-totals.result.cove")
	console := filepath.Join(e.dir, "console.log")
	res, err := launcher.Run(context.Background(), plan, launcher.Options{
		Driver:         &hypervisor.QEMU{},
		Device:         device,
		ForwardCommand: []string{img.cove, "forward", addr},
		KBSCACert:      caPEM,
		OutputPath:     output,
		TranscriptPath: filepath.Join(e.dir, "claims-totals.transcript.json"),
		ConsoleLog:     console,
		Timeout:        5 * time.Minute,
	})
	if err != nil || e.t.Failed() {
		if b, rerr := os.ReadFile(console); rerr == nil {
			e.t.Logf("guest console:\n%s", tail(string(b), 4000))
		}
	}
	return res, output, err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// unseal decrypts a job's output with the env's identity.
func (e *env) unseal(path string) []byte {
	e.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, e.identity)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func expectedTotals(t testing.TB, plain []byte) []byte {
	t.Helper()
	totals, err := claimsdata.Totals(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := claimsdata.WriteTotals(&buf, totals); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func noFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed job (stat error %v)", path, err)
	}
	if _, err := os.Stat(path + ".partial"); !os.IsNotExist(err) {
		t.Errorf("%s.partial exists after a failed job", path)
	}
}
