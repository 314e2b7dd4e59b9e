package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"filippo.io/age"

	"cove.dev/cove/internal/channel"
	"cove.dev/cove/internal/sealed"
)

// execute decrypts each input into its named pipe, runs the command, and
// seals the command's standard output to the recipient as it is written.
func execute(ctx context.Context, job *Job, keys [][]byte, tr *channel.Transcript) error {
	c := job.Canonical
	recipient, err := age.ParseX25519Recipient(c.Output.Recipient)
	if err != nil {
		return fmt.Errorf("output recipient: %w", err)
	}
	inputDir := job.InputDir
	if inputDir == "" {
		inputDir = InputDir
	}
	if err := os.MkdirAll(inputDir, 0o700); err != nil {
		return err
	}
	pipes := make([]string, len(c.Inputs))
	for i, in := range c.Inputs {
		pipes[i] = filepath.Join(inputDir, in.Name)
		os.Remove(pipes[i])
		if err := syscall.Mkfifo(pipes[i], 0o600); err != nil {
			return fmt.Errorf("make the pipe for input %q: %w", in.Name, err)
		}
	}

	out := &countingWriter{w: job.Output, h: sha256.New()}
	sealer, err := age.Encrypt(out, recipient)
	if err != nil {
		return fmt.Errorf("seal the output: %w", err)
	}

	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	cmd.Stdout = sealer
	// NOTE: the command's standard error is discarded: it may carry job
	// data, and the host must not see it. Write diagnostics to stdout.
	cmd.Stderr = io.Discard
	cmd.Dir = "/tmp"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "COVE_INPUTS=" + inputDir}
	// The command runs in its own process group, so that a failed input or
	// the context's end kills its children too. A child that keeps the
	// output pipe open would otherwise block Wait indefinitely.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = commandWaitDelay
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.Command[0], err)
	}

	exited := make(chan struct{})
	feedErr := make(chan error, 1)
	go func() {
		err := feedInputs(job, keys, pipes, exited)
		if err != nil {
			// A command that waits to open or read a later input would
			// otherwise block until the context's deadline.
			_ = killProcessGroup(cmd)
		}
		feedErr <- err
	}()

	waitErr := cmd.Wait()
	close(exited)
	inErr := <-feedErr

	if waitErr != nil {
		var exit *exec.ExitError
		if errors.As(waitErr, &exit) {
			tr.ExitCode = exit.ExitCode()
		}
	}
	if inErr != nil {
		return inErr
	}
	if waitErr != nil {
		return fmt.Errorf("the command %s failed: %w", c.Command[0], waitErr)
	}
	if err := sealer.Close(); err != nil {
		return fmt.Errorf("seal the output: %w", err)
	}
	tr.OutputBytes = out.n
	tr.OutputSHA256 = hex.EncodeToString(out.h.Sum(nil))
	return nil
}

// commandWaitDelay bounds how long Wait waits for the output pipe to close
// after the command exited or was killed.
const commandWaitDelay = 5 * time.Second

// killProcessGroup kills the command and every process in its group. It
// returns an error, which callers ignore, when none of them is left.
func killProcessGroup(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// feedInputs decrypts the sealed inputs, in order, from the input port
// into their pipes. Each input must be read to its end: only then has the
// stream's final segment, and so the whole input, been authenticated.
func feedInputs(job *Job, keys [][]byte, pipes []string, exited <-chan struct{}) error {
	c := job.Canonical
	for i, in := range c.Inputs {
		src := io.LimitReader(job.Input, job.Manifest.InputSizes[i])
		if err := feedInput(src, in.Resource, keys[i], pipes[i], exited); err != nil {
			return fmt.Errorf("input %q: %w", in.Name, err)
		}
	}
	return nil
}

func feedInput(src io.Reader, resource string, key []byte, pipe string, exited <-chan struct{}) error {
	header, r, err := sealed.ReadHeader(src)
	if err != nil {
		return err
	}
	if header.Resource != resource {
		return fmt.Errorf("the sealed file is for resource %s, but the job names %s", header.Resource, resource)
	}
	plain, err := r.Decrypt(key)
	if err != nil {
		return err
	}
	f, err := openPipeWriter(pipe, exited)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, plain)
	closeErr := f.Close()
	if errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("the command stopped reading: %w", errIncomplete)
	}
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	return closeErr
}

// openPipeWriter opens a named pipe for writing once the command opens it
// for reading. It gives up when the command exits first.
func openPipeWriter(pipe string, exited <-chan struct{}) (*os.File, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		fd, err := syscall.Open(pipe, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == nil {
			if err := syscall.SetNonblock(fd, false); err != nil {
				syscall.Close(fd)
				return nil, err
			}
			return os.NewFile(uintptr(fd), pipe), nil
		}
		if err != syscall.ENXIO {
			return nil, err
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("the command exited without opening %s: %w", pipe, errIncomplete)
		case <-tick.C:
		}
	}
}

type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}
