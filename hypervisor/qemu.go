package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrStopped is wrapped by the error that Wait returns when the VM was
// killed by Stop or by a cancelled context instead of powering off.
var ErrStopped = errors.New("VM was stopped before it powered off")

// QEMU is a [Driver] that runs qemu-system-x86_64. The zero value finds
// the binary on PATH and detects the accelerator.
//
// QEMU runs in its own process group and receives SIGKILL when the thread
// that started it exits, so a crashed launcher leaves no VM behind.
type QEMU struct {
	// Binary is the QEMU executable. Empty means qemu-system-x86_64 on PATH.
	Binary string
	// Accel forces the accelerator, AccelKVM or AccelTCG. Empty means the
	// value of the COVE_QEMU_ACCEL environment variable, and when that is
	// empty too, the result of [DetectAccel].
	Accel string
	// ProbeTimeout bounds the accelerator probe. Zero means
	// DefaultProbeTimeout.
	ProbeTimeout time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	accel   string
	stderr  *tailBuffer
	done    chan struct{} // closed when QEMU has exited
	waitErr error         // set before done is closed
	stopped error         // reason the VM was killed, nil while it runs
}

var _ Driver = (*QEMU)(nil)

// Start validates cfg, selects the accelerator and starts QEMU. Cancelling
// ctx kills QEMU at any time, also after Start has returned.
func (q *QEMU) Start(ctx context.Context, cfg VMConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}

	q.mu.Lock()
	started := q.cmd != nil
	q.mu.Unlock()
	if started {
		return errors.New("start QEMU: this driver has already started a VM")
	}

	binary, err := q.binary()
	if err != nil {
		return err
	}
	accel, err := q.selectAccel(ctx, binary, cfg.Kernel)
	if err != nil {
		return err
	}
	args, err := QEMUArgs(cfg, accel)
	if err != nil {
		return err
	}

	cmd := exec.Command(binary, args...)
	// NOTE: Linux sends Pdeathsig when the OS thread that forked exits, not
	// the process; Go keeps that thread alive unless it was locked with
	// runtime.LockOSThread and then released by an exiting goroutine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	// Programs that guestfwd started inherit QEMU's stderr, so do not wait
	// for them to close it once QEMU itself has exited.
	cmd.WaitDelay = 2 * time.Second

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cmd != nil {
		return errors.New("start QEMU: this driver has already started a VM")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start QEMU: %w", err)
	}
	q.cmd = cmd
	q.accel = accel
	q.stderr = stderr
	q.done = make(chan struct{})

	go q.reap()
	go q.killOnCancel(ctx)
	return nil
}

// SelectedAccel returns the accelerator that Start chose, or "" before
// Start.
func (q *QEMU) SelectedAccel() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.accel
}

// Pid returns the process id of QEMU, or 0 before Start.
func (q *QEMU) Pid() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cmd == nil {
		return 0
	}
	return q.cmd.Process.Pid
}

// Wait blocks until QEMU exits. It returns nil when the guest powered off
// or rebooted, an error wrapping [ErrStopped] when the VM was killed, and
// an error with QEMU's last messages when QEMU failed. When ctx is done
// first, Wait kills the VM and returns the context's error.
func (q *QEMU) Wait(ctx context.Context) error {
	q.mu.Lock()
	done := q.done
	q.mu.Unlock()
	if done == nil {
		return errors.New("wait for QEMU: the VM was not started")
	}

	select {
	case <-done:
	case <-ctx.Done():
		_ = q.Stop(context.WithoutCancel(ctx))
		return fmt.Errorf("wait for QEMU: %w", ctx.Err())
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped != nil {
		return q.stopped
	}
	if q.waitErr != nil {
		return fmt.Errorf("QEMU failed: %w: %s", q.waitErr, strings.TrimSpace(q.stderr.String()))
	}
	return nil
}

// Stop kills the QEMU process group and waits until QEMU has exited or ctx
// is done. It returns nil before Start and after QEMU has exited.
func (q *QEMU) Stop(ctx context.Context) error {
	q.kill(fmt.Errorf("%w: Stop was called", ErrStopped))

	q.mu.Lock()
	done := q.done
	q.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop QEMU: %w", ctx.Err())
	}
}

// kill sends SIGKILL to the QEMU process group unless QEMU has exited, and
// records why.
func (q *QEMU) kill(reason error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cmd == nil {
		return
	}
	select {
	case <-q.done:
		return
	default:
	}
	if q.stopped == nil {
		q.stopped = reason
	}
	// The negative pid addresses the group, which includes the programs
	// that guestfwd started.
	_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
}

func (q *QEMU) reap() {
	err := q.cmd.Wait()
	// End the programs that guestfwd started and that outlived QEMU. The
	// group id stays reserved while any member is alive, so the signal
	// cannot reach an unrelated process.
	_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
	q.mu.Lock()
	q.waitErr = err
	close(q.done)
	q.mu.Unlock()
}

func (q *QEMU) killOnCancel(ctx context.Context) {
	select {
	case <-ctx.Done():
		q.kill(fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx)))
	case <-q.done:
	}
}

func (q *QEMU) binary() (string, error) {
	name := q.Binary
	if name == "" {
		name = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("find QEMU: %w; install qemu-system-x86 or set the driver's Binary", err)
	}
	return path, nil
}

func (q *QEMU) selectAccel(ctx context.Context, binary, kernel string) (string, error) {
	accel, source := q.Accel, "QEMU.Accel"
	if accel == "" {
		accel, source = os.Getenv(AccelEnv), AccelEnv
	}
	switch accel {
	case AccelKVM, AccelTCG:
		return accel, nil
	case "":
		return DetectAccel(ctx, binary, kernel, q.ProbeTimeout)
	default:
		return "", fmt.Errorf("%s=%q is not an accelerator; want %q or %q", source, accel, AccelKVM, AccelTCG)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
