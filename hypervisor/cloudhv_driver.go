package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CloudHypervisor is a [Driver] that starts cloud-hypervisor with an API
// socket, then creates and boots the VM through the REST API.
type CloudHypervisor struct {
	// Binary is the cloud-hypervisor executable. Empty means
	// cloud-hypervisor on PATH.
	Binary string
	// APISocket is the path of the API socket. Empty means api.sock in a new
	// temporary folder, removed by Stop.
	APISocket string
	// PollInterval is the interval at which Wait reads the state from vm.info. Zero means
	// 200 ms.
	PollInterval time.Duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	client  *CloudHypervisorClient
	tempDir string
	stderr  *tailBuffer
	done    chan struct{} // closed when cloud-hypervisor has exited
	waitErr error
	stopped error
}

var _ Driver = (*CloudHypervisor)(nil)

// apiStartTimeout bounds the wait for the API socket after cloud-hypervisor
// starts.
const apiStartTimeout = 10 * time.Second

// Start validates cfg, starts cloud-hypervisor, and calls vm.create with
// [CloudHypervisorCreateBody] and then vm.boot. Cancelling ctx kills
// cloud-hypervisor at any time, also after Start has returned.
func (c *CloudHypervisor) Start(ctx context.Context, cfg VMConfig) error {
	body, err := CloudHypervisorCreateBody(cfg)
	if err != nil {
		return err
	}
	name := c.Binary
	if name == "" {
		name = "cloud-hypervisor"
	}
	binary, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("find cloud-hypervisor: %w; install it or set the driver's Binary", err)
	}

	c.mu.Lock()
	if c.cmd != nil {
		c.mu.Unlock()
		return errors.New("start cloud-hypervisor: this driver has already started a VM")
	}
	socket := c.APISocket
	if socket == "" {
		c.tempDir, err = os.MkdirTemp("", "cove-ch-")
		if err != nil {
			c.mu.Unlock()
			return err
		}
		socket = filepath.Join(c.tempDir, "api.sock")
	}
	cmd := exec.Command(binary, "--api-socket", "path="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.stderr = &tailBuffer{max: 8 << 10}
	cmd.Stdout = c.stderr
	cmd.Stderr = c.stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("start cloud-hypervisor: %w", err)
	}
	c.cmd = cmd
	c.client = NewCloudHypervisorClient(socket)
	c.done = make(chan struct{})
	c.mu.Unlock()

	go c.reap()
	go c.killOnCancel(ctx)

	if err := c.createAndBoot(ctx, body); err != nil {
		_ = c.Stop(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

func (c *CloudHypervisor) createAndBoot(ctx context.Context, body []byte) error {
	deadline := time.Now().Add(apiStartTimeout)
	for {
		_, err := c.client.Ping(ctx)
		if err == nil {
			break
		}
		select {
		case <-c.done:
			return fmt.Errorf("cloud-hypervisor exited before its API responded: %s", strings.TrimSpace(c.stderr.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cloud-hypervisor API timed out after %v: %w", apiStartTimeout, err)
		}
	}
	if err := c.client.CreateVM(ctx, body); err != nil {
		return err
	}
	return c.client.BootVM(ctx)
}

// Client returns the API client of the running VMM, or nil before Start.
func (c *CloudHypervisor) Client() *CloudHypervisorClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// Wait blocks until vm.info reports Shutdown or cloud-hypervisor exits, and
// returns nil for both. It returns an error wrapping [ErrStopped] when the
// VM was killed. When ctx is done first, Wait kills the VM and returns the
// context's error.
func (c *CloudHypervisor) Wait(ctx context.Context) error {
	c.mu.Lock()
	done, client := c.done, c.client
	c.mu.Unlock()
	if done == nil {
		return errors.New("wait for cloud-hypervisor: the VM was not started")
	}
	interval := c.PollInterval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.stopped != nil {
				return c.stopped
			}
			if c.waitErr != nil {
				return fmt.Errorf("cloud-hypervisor failed: %w: %s", c.waitErr, strings.TrimSpace(c.stderr.String()))
			}
			return nil
		case <-ctx.Done():
			_ = c.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("wait for cloud-hypervisor: %w", ctx.Err())
		case <-ticker.C:
			info, err := client.VMInfo(ctx)
			if err == nil && info.State == "Shutdown" {
				return nil
			}
		}
	}
}

// Stop kills the cloud-hypervisor process group and waits until it has
// exited or ctx is done. It returns nil before Start and when called again.
func (c *CloudHypervisor) Stop(ctx context.Context) error {
	c.mu.Lock()
	done := c.done
	if c.cmd != nil {
		select {
		case <-done:
		default:
			if c.stopped == nil {
				c.stopped = fmt.Errorf("%w: Stop was called", ErrStopped)
			}
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	c.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop cloud-hypervisor: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
		c.tempDir = ""
	}
	return nil
}

func (c *CloudHypervisor) reap() {
	err := c.cmd.Wait()
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	c.mu.Lock()
	c.waitErr = err
	close(c.done)
	c.mu.Unlock()
}

func (c *CloudHypervisor) killOnCancel(ctx context.Context) {
	select {
	case <-ctx.Done():
		c.mu.Lock()
		select {
		case <-c.done:
			c.mu.Unlock()
			return
		default:
		}
		if c.stopped == nil {
			c.stopped = fmt.Errorf("%w: %w", ErrStopped, context.Cause(ctx))
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		c.mu.Unlock()
	case <-c.done:
	}
}
