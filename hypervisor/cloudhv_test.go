package hypervisor_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cove.dev/cove/hypervisor"
	"cove.dev/cove/hypervisor/chdouble"
)

// TestMain lets the test binary stand in for cloud-hypervisor: started
// through a link named cloud-hypervisor, it serves the API double on the
// socket given with --api-socket path=... until it is killed.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "cloud-hypervisor" {
		os.Exit(runFakeCloudHypervisor(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runFakeCloudHypervisor(args []string) int {
	var socket string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--api-socket" {
			socket = strings.TrimPrefix(args[i+1], "path=")
		}
	}
	if socket == "" {
		fmt.Fprintln(os.Stderr, "fake cloud-hypervisor: --api-socket path=... is missing")
		return 2
	}
	server, err := chdouble.Listen(socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake cloud-hypervisor:", err)
		return 1
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	server.Close()
	return 0
}

func startDouble(t *testing.T) (*chdouble.Server, *hypervisor.CloudHypervisorClient) {
	t.Helper()
	server, err := chdouble.Listen(filepath.Join(t.TempDir(), "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, hypervisor.NewCloudHypervisorClient(server.SocketPath())
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var apiErr *hypervisor.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v is not an *APIError, want status %d", err, status)
	}
	if apiErr.StatusCode != status {
		t.Fatalf("status %d (%v), want %d", apiErr.StatusCode, err, status)
	}
	if apiErr.Body == "" {
		t.Errorf("APIError for status %d has an empty body", status)
	}
}

func TestCloudHypervisorClientLifecycle(t *testing.T) {
	server, client := startDouble(t)
	ctx := t.Context()

	ping, err := client.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ping.Version != chdouble.Version {
		t.Errorf("ping version %q, want %q", ping.Version, chdouble.Version)
	}

	body, err := hypervisor.CloudHypervisorCreateBody(validConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.CreateVM(ctx, body); err != nil {
		t.Fatal(err)
	}
	info, err := client.VMInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "Created" {
		t.Errorf("state after vm.create %q, want Created", info.State)
	}
	if !json.Valid(info.Config) || !strings.Contains(string(info.Config), `"boot_vcpus"`) {
		t.Errorf("vm.info config %s does not carry the created VmConfig", info.Config)
	}

	if err := client.BootVM(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := client.VMInfo(ctx); info.State != "Running" {
		t.Errorf("state after vm.boot %q, want Running", info.State)
	}
	if err := client.ShutdownVM(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := client.VMInfo(ctx); info.State != "Shutdown" {
		t.Errorf("state after vm.shutdown %q, want Shutdown", info.State)
	}
	if err := client.DeleteVM(ctx); err != nil {
		t.Fatal(err)
	}
	if server.State() != "" {
		t.Errorf("state after vm.delete %q, want no VM", server.State())
	}
}

func TestCloudHypervisorClientNoVM(t *testing.T) {
	_, client := startDouble(t)
	ctx := t.Context()
	_, err := client.VMInfo(ctx)
	wantStatus(t, err, http.StatusNotFound)
	wantStatus(t, client.BootVM(ctx), http.StatusNotFound)
	wantStatus(t, client.ShutdownVM(ctx), http.StatusNotFound)
}

func TestCloudHypervisorClientWrongState(t *testing.T) {
	_, client := startDouble(t)
	ctx := t.Context()
	body, err := hypervisor.CloudHypervisorCreateBody(validConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.CreateVM(ctx, body); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, client.ShutdownVM(ctx), http.StatusMethodNotAllowed)
	wantStatus(t, client.CreateVM(ctx, body), http.StatusMethodNotAllowed)
	if err := client.BootVM(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, client.BootVM(ctx), http.StatusMethodNotAllowed)
}

func TestCloudHypervisorClientInvalidBody(t *testing.T) {
	_, client := startDouble(t)
	// memory.size must be an integer and payload is required.
	err := client.CreateVM(t.Context(), []byte(`{"memory": {"size": "2G"}}`))
	wantStatus(t, err, http.StatusBadRequest)
}

func TestCreateBodyMatchesSpec(t *testing.T) {
	for _, tee := range []string{hypervisor.TEESNP, hypervisor.TEETDX, hypervisor.TEESimSNP} {
		t.Run(tee, func(t *testing.T) {
			cfg := validConfig(t)
			cfg.TEE = tee
			if tee == hypervisor.TEETDX {
				cfg.HostData = nil
			}
			body, err := hypervisor.CloudHypervisorCreateBody(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := chdouble.ValidateVMConfig(body); err != nil {
				t.Fatalf("body does not match the VmConfig schema: %v\n%s", err, body)
			}
			var got struct {
				Cpus     struct{ BootVcpus, MaxVcpus int } `json:"cpus"`
				Memory   struct{ Size int64 }              `json:"memory"`
				Payload  map[string]string                 `json:"payload"`
				Platform map[string]bool                   `json:"platform"`
				Serial   map[string]string                 `json:"serial"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Memory.Size != 512<<20 {
				t.Errorf("memory.size = %d, want %d", got.Memory.Size, 512<<20)
			}
			if got.Serial["mode"] != "File" || got.Serial["file"] != cfg.ConsoleLog {
				t.Errorf("serial = %v, want mode File to %s", got.Serial, cfg.ConsoleLog)
			}
			switch tee {
			case hypervisor.TEESNP:
				if !got.Platform["sev_snp"] {
					t.Errorf("platform = %v, want sev_snp true", got.Platform)
				}
				if want := hex.EncodeToString(cfg.HostData); got.Payload["host_data"] != want {
					t.Errorf("payload.host_data = %q, want %q", got.Payload["host_data"], want)
				}
				if got.Payload["igvm"] != cfg.Firmware {
					t.Errorf("payload.igvm = %q, want %q", got.Payload["igvm"], cfg.Firmware)
				}
			case hypervisor.TEETDX:
				if !got.Platform["tdx"] || got.Payload["firmware"] != cfg.Firmware {
					t.Errorf("platform %v, payload %v: want tdx true and firmware %s", got.Platform, got.Payload, cfg.Firmware)
				}
			case hypervisor.TEESimSNP:
				if got.Platform != nil || got.Payload["host_data"] != "" {
					t.Errorf("platform %v, payload %v: want no platform and no host_data", got.Platform, got.Payload)
				}
				if got.Payload["kernel"] != cfg.Kernel {
					t.Errorf("payload.kernel = %q, want %q", got.Payload["kernel"], cfg.Kernel)
				}
			}
		})
	}
}

func TestCreateBodyRejectsInvalidConfig(t *testing.T) {
	cfg := validConfig(t)
	cfg.TEE = hypervisor.TEESNP
	cfg.HostData = cfg.HostData[:30]
	if _, err := hypervisor.CloudHypervisorCreateBody(cfg); err == nil {
		t.Fatal("CloudHypervisorCreateBody accepted 30 bytes of host data, want an error")
	}
}

func TestCloudHypervisorDriverWithFakeBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "cloud-hypervisor")
	if err := os.Symlink(self, fake); err != nil {
		t.Fatal(err)
	}
	driver := &hypervisor.CloudHypervisor{Binary: fake, PollInterval: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := driver.Start(ctx, validConfig(t)); err != nil {
		t.Fatal(err)
	}
	defer driver.Stop(context.Background())

	info, err := driver.Client().VMInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "Running" {
		t.Fatalf("state after Start %q, want Running", info.State)
	}
	// The double has no guest, so vm.shutdown plays the guest's poweroff.
	if err := driver.Client().ShutdownVM(ctx); err != nil {
		t.Fatal(err)
	}
	if err := driver.Wait(ctx); err != nil {
		t.Fatalf("Wait after shutdown: %v", err)
	}
	if err := driver.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := driver.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
