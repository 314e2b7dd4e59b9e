package hypervisor_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cove.dev/cove/hypervisor"
	"cove.dev/cove/internal/testenv"
)

const guestGreeting = "hello from the guest" // Greeting in testdata/guestinit

// bootTimeout bounds one guest boot. The test guest powers off well within
// it even under TCG, so it only catches a hung VM.
const bootTimeout = 2 * time.Minute

// guest is a VM booted by a test, with the host end of its cove.ctl port.
type guest struct {
	driver  *hypervisor.QEMU
	cfg     hypervisor.VMConfig
	started time.Time
	port    net.Conn
	reader  *bufio.Reader
}

// startGuest boots the test guest with the given extra kernel parameters
// and accepts the connection of its cove.ctl port.
func startGuest(t *testing.T, ctx context.Context, extraCmdline string, fwd *hypervisor.GuestForward) *guest {
	t.Helper()
	qemu := testenv.QEMU(t)
	kernel, initrd := buildInitramfs(t)

	dir := t.TempDir()
	socket := filepath.Join(dir, "ctl.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })

	cfg := hypervisor.VMConfig{
		Kernel:       kernel,
		Initrd:       initrd,
		Cmdline:      "console=ttyS0 panic=-1 cove.port=cove.ctl " + extraCmdline,
		VCPUs:        1,
		MemoryMiB:    256,
		TEE:          hypervisor.TEESimSNP,
		HostData:     []byte(strings.Repeat("\x42", hypervisor.HostDataSize)),
		Ports:        []hypervisor.SerialPort{{Name: "cove.ctl", SocketPath: socket}},
		GuestForward: fwd,
		ConsoleLog:   filepath.Join(dir, "console.log"),
	}
	g := &guest{driver: &hypervisor.QEMU{Binary: qemu}, cfg: cfg}
	g.started = time.Now()
	if err := g.driver.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.driver.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			console, _ := os.ReadFile(cfg.ConsoleLog)
			t.Logf("serial console:\n%s", console)
		}
	})
	t.Logf("QEMU started with accelerator %s after %v", g.driver.SelectedAccel(), time.Since(g.started))

	// QEMU connects to the port socket when it starts.
	listener.(*net.UnixListener).SetDeadline(time.Now().Add(30 * time.Second))
	g.port, err = listener.Accept()
	if err != nil {
		t.Fatalf("QEMU did not connect to the port socket: %v", err)
	}
	t.Cleanup(func() { g.port.Close() })
	g.port.SetDeadline(time.Now().Add(bootTimeout))
	g.reader = bufio.NewReader(g.port)
	return g
}

func (g *guest) readLine(t *testing.T) string {
	t.Helper()
	line, err := g.reader.ReadString('\n')
	if err != nil {
		t.Fatalf("read from the guest's port: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (g *guest) acknowledgeAndWait(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := g.port.Write([]byte("bye\n")); err != nil {
		t.Fatal(err)
	}
	if err := g.driver.Wait(ctx); err != nil {
		t.Fatalf("Wait after guest poweroff: %v", err)
	}
	t.Logf("guest powered off %v after Start", time.Since(g.started))
}

func TestQEMUBootsGuestWithSerialPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	g := startGuest(t, ctx, "", nil)

	got := g.readLine(t)
	if got != guestGreeting {
		t.Fatalf("guest wrote %q, want %q", got, guestGreeting)
	}
	t.Logf("greeting read %v after Start", time.Since(g.started))
	g.acknowledgeAndWait(t, ctx)

	console, err := os.ReadFile(g.cfg.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(console), "guestinit: host acknowledged: bye") {
		t.Errorf("console log lacks the guest's acknowledgement line:\n%s", console)
	}
}

func TestQEMUGuestForwardKeepsArguments(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	fwd := &hypervisor.GuestForward{
		GuestAddr: "10.0.2.100:8443",
		// The shell prints each argument followed by "|", which shows where
		// QEMU split the command.
		Command: []string{"/bin/sh", "-c", `printf '%s|' "$@"`, "sh", "two words", "a,b", "it's", `$HOME`},
	}
	g := startGuest(t, ctx, "cove.dial=10.0.2.100:8443", fwd)

	if got := g.readLine(t); got != guestGreeting {
		t.Fatalf("guest wrote %q, want %q", got, guestGreeting)
	}
	got := g.readLine(t)
	want := "forward: two words|a,b|it's|$HOME|"
	if got != want {
		t.Fatalf("guest read %q through guestfwd, want %q", got, want)
	}
	t.Logf("forwarded reply read %v after Start", time.Since(g.started))
	g.acknowledgeAndWait(t, ctx)
}

func TestQEMUCancelKillsProcess(t *testing.T) {
	qemu := testenv.QEMU(t)
	kernel, initrd := buildInitramfs(t)
	socket := filepath.Join(t.TempDir(), "ctl.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()

	ctx, cancel := context.WithCancel(t.Context())
	driver := &hypervisor.QEMU{Binary: qemu, Accel: hypervisor.AccelTCG}
	cfg := hypervisor.VMConfig{
		Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 cove.port=cove.ctl",
		VCPUs: 1, MemoryMiB: 256, TEE: hypervisor.TEESimSNP,
		HostData: []byte(strings.Repeat("\x01", hypervisor.HostDataSize)),
		Ports:    []hypervisor.SerialPort{{Name: "cove.ctl", SocketPath: socket}},
	}
	if err := driver.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pid := driver.Pid()
	cancel()

	waitCtx, waitCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer waitCancel()
	err = driver.Wait(waitCtx)
	if !errors.Is(err, hypervisor.ErrStopped) {
		t.Fatalf("Wait after cancel returned %v, want an error wrapping ErrStopped", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after cancel returned %v, want an error wrapping context.Canceled", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU process %d still exists after cancel (kill 0: %v)", pid, err)
	}
	if err := driver.Stop(context.Background()); err != nil {
		t.Errorf("second Stop returned %v, want nil", err)
	}
}

func TestQEMUStopBeforeStartIsNoop(t *testing.T) {
	driver := &hypervisor.QEMU{}
	if err := driver.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start returned %v, want nil", err)
	}
	if err := driver.Wait(context.Background()); err == nil {
		t.Fatal("Wait before Start returned nil, want an error")
	}
}

func TestQEMURejectsUnknownAccelerator(t *testing.T) {
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(hypervisor.AccelEnv, "hvf")
	driver := &hypervisor.QEMU{Binary: "/bin/true"}
	cfg := hypervisor.VMConfig{
		Kernel: kernel, VCPUs: 1, MemoryMiB: 128, TEE: hypervisor.TEESimSNP,
		HostData: []byte(strings.Repeat("\x01", hypervisor.HostDataSize)),
	}
	err := driver.Start(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), hypervisor.AccelEnv) {
		t.Fatalf("Start with %s=hvf returned %v, want an error naming %s", hypervisor.AccelEnv, err, hypervisor.AccelEnv)
	}
}

func TestDetectAccelBootsKernel(t *testing.T) {
	qemu := testenv.QEMU(t)
	kernel, _ := testenv.Kernel(t)
	begin := time.Now()
	accel, err := hypervisor.DetectAccel(t.Context(), qemu, kernel, 0)
	if err != nil {
		t.Fatal(err)
	}
	if accel != hypervisor.AccelKVM && accel != hypervisor.AccelTCG {
		t.Fatalf("DetectAccel returned %q, want kvm or tcg", accel)
	}
	if _, err := os.Stat("/dev/kvm"); err != nil && accel != hypervisor.AccelTCG {
		t.Errorf("DetectAccel returned %q without /dev/kvm, want tcg", accel)
	}
	t.Logf("DetectAccel chose %s in %v", accel, time.Since(begin))

	begin = time.Now()
	again, err := hypervisor.DetectAccel(t.Context(), qemu, kernel, 0)
	if err != nil || again != accel {
		t.Fatalf("second DetectAccel returned %q, %v; want the cached %q", again, err, accel)
	}
	if elapsed := time.Since(begin); elapsed > time.Second {
		t.Errorf("second DetectAccel took %v, want the cached result at once", elapsed)
	}
}
