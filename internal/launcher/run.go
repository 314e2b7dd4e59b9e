package launcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cove.dev/cove/hypervisor"
	"cove.dev/cove/internal/channel"
)

// Device signs attestation evidence for REPORT_DATA, as the TEE firmware
// would: the software SEV-SNP device for sim-snp jobs.
type Device interface {
	Evidence(reportData [64]byte) (json.RawMessage, error)
}

// Options configure one run.
type Options struct {
	Driver hypervisor.Driver
	// Device serves the guest's report requests on the sim-snp port. It
	// is nil for hardware TEEs, whose guests ask their own firmware.
	Device Device
	// ForwardCommand is the host program QEMU starts for each guest
	// connection to the broker. It must join its standard input and output
	// to the broker's address, as cove forward HOST:PORT does.
	ForwardCommand []string
	// KBSCACert is the PEM CA certificate of the broker, passed to the guest.
	KBSCACert []byte
	// OutputPath and TranscriptPath are where the sealed output and the
	// transcript are written. The output appears only when the job
	// succeeded; until then it is OutputPath + ".partial".
	OutputPath, TranscriptPath string
	ConsoleLog                 string
	// Timeout bounds the whole run; zero means 10 minutes.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Timings split a run into its stages, as seen from the host.
type Timings struct {
	// Boot runs from the VM's start to the agent's first message.
	Boot time.Duration
	// Release runs from the agent's first message to the data keys being
	// released inside the guest: attestation, policy and Vault.
	Release time.Duration
	// Total runs from the VM's start to the transcript.
	Total time.Duration
}

// Result is the outcome of a run.
type Result struct {
	Transcript channel.Transcript
	Timings    Timings
}

// ErrJobFailed is wrapped by Run's error when the guest reported a failure.
var ErrJobFailed = errors.New("job failed")

// Run launches the plan's VM and runs the job to the end. It returns the
// guest's transcript; the error is non-nil when the job did not succeed,
// and then no file at OutputPath exists.
func Run(ctx context.Context, p *Plan, opts Options) (*Result, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	guestURL, err := guestKBSURL(p.Spec.KBS.URL)
	if err != nil {
		return nil, err
	}
	manifest := channel.Manifest{Job: p.Canonical, KBSURL: guestURL, KBSCACert: opts.KBSCACert}
	for _, in := range p.Inputs {
		manifest.InputSizes = append(manifest.InputSizes, in.Size)
	}

	sockDir, err := os.MkdirTemp("", "cove-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sockDir)
	ports := []string{channel.PortControl, channel.PortInput, channel.PortOutput}
	if opts.Device != nil {
		ports = append(ports, channel.PortSNP)
	}
	listeners := map[string]net.Listener{}
	cfg := p.VM
	cfg.ConsoleLog = opts.ConsoleLog
	for _, name := range ports {
		path := filepath.Join(sockDir, name+".sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		listeners[name] = l
		cfg.Ports = append(cfg.Ports, hypervisor.SerialPort{Name: name, SocketPath: path})
	}
	if len(opts.ForwardCommand) > 0 {
		cfg.GuestForward = &hypervisor.GuestForward{GuestAddr: channel.GuestKBSAddr, Command: opts.ForwardCommand}
	}

	// An output or transcript left by an earlier run of the job must not
	// survive a failure of this one, where it would look like this run's
	// result. A run that ends without the guest's transcript writes none.
	for _, path := range []string{opts.OutputPath, opts.TranscriptPath} {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	partial := opts.OutputPath + ".partial"
	out, err := os.OpenFile(partial, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() {
		out.Close()
		os.Remove(partial)
	}()

	start := time.Now()
	if err := opts.Driver.Start(ctx, cfg); err != nil {
		return nil, fmt.Errorf("start the VM: %w", err)
	}
	defer opts.Driver.Stop(context.Background())
	vmDone := make(chan error, 1)
	go func() { vmDone <- opts.Driver.Wait(ctx) }()

	emptySum := sha256.Sum256(nil)
	s := &session{opts: opts, plan: p, start: start, out: out, outHash: emptySum[:]}
	s.outCond = sync.NewCond(&s.mu)
	go s.serveOutput(ctx, listeners[channel.PortOutput])
	go s.serveInputs(ctx, listeners[channel.PortInput])
	if opts.Device != nil {
		go s.serveDevice(ctx, listeners[channel.PortSNP])
	}
	trCh := make(chan *channel.Transcript, 1)
	ctlErr := make(chan error, 1)
	go func() {
		tr, err := s.serveControl(ctx, listeners[channel.PortControl], manifest)
		if err != nil {
			ctlErr <- err
			return
		}
		trCh <- tr
	}()

	var tr *channel.Transcript
	select {
	case tr = <-trCh:
	case err := <-ctlErr:
		return nil, fmt.Errorf("guest control channel: %w", err)
	case err := <-vmDone:
		// A guest powers off right after sending its transcript, so the
		// VM can be gone before the last frame is read from the socket.
		select {
		case tr = <-trCh:
		case <-ctlErr:
		case <-time.After(2 * time.Second):
		}
		if tr == nil {
			return nil, fmt.Errorf("the VM stopped before the guest reported a result (console: %s): %v", opts.ConsoleLog, err)
		}
		vmDone <- err
	case <-ctx.Done():
		return nil, fmt.Errorf("the job did not finish within %v (console: %s)", opts.Timeout, opts.ConsoleLog)
	}
	res := &Result{Transcript: *tr}
	res.Timings = s.timings()
	res.Timings.Total = time.Since(start)

	if tr.OK {
		if err := s.finishOutput(ctx, tr); err != nil {
			tr.OK = false
			tr.Error = err.Error()
		}
	}
	if err := writeTranscript(opts.TranscriptPath, tr); err != nil {
		return res, err
	}
	// Give the guest a moment to power off cleanly; Stop is deferred.
	select {
	case <-vmDone:
	case <-time.After(10 * time.Second):
	}
	if !tr.OK {
		return res, fmt.Errorf("%w: %s", ErrJobFailed, tr.Error)
	}
	if err := out.Sync(); err != nil {
		return res, err
	}
	if err := os.Rename(partial, opts.OutputPath); err != nil {
		return res, err
	}
	opts.Logger.Info("job finished", "job", tr.JobDigest, "output", opts.OutputPath, "bytes", tr.OutputBytes)
	return res, nil
}

// guestKBSURL rewrites the broker URL to the address the guest reaches it
// at, keeping its path.
func guestKBSURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("kbs.url: %w", err)
	}
	u.Host = channel.GuestKBSAddr
	return u.String(), nil
}

// KBSHostAddr returns host:port of the broker URL, for the forwarder.
func KBSHostAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("kbs.url: %w", err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return u.Host, nil
}

func writeTranscript(path string, tr *channel.Transcript) error {
	b, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".partial"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type session struct {
	opts  Options
	plan  *Plan
	start time.Time
	out   *os.File

	mu       sync.Mutex
	outCond  *sync.Cond
	outBytes int64
	// outHash is the SHA-256 of the outBytes bytes written to out.
	outHash []byte
	outDone bool
	outErr  error
	// outChecked is set by finishOutput. From then on serveOutput drops
	// what arrives, so out holds exactly the bytes that were checked.
	outChecked bool
	// outDropped counts the bytes dropped after the check.
	outDropped int64
	firstMsg   time.Time
	released   time.Time
}

func accept(ctx context.Context, l net.Listener) (net.Conn, error) {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	return l.Accept()
}

func (s *session) serveControl(ctx context.Context, l net.Listener, m channel.Manifest) (*channel.Transcript, error) {
	conn, err := accept(ctx, l)
	if err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	if err := channel.WriteJSON(conn, m); err != nil {
		return nil, err
	}
	for {
		var msg channel.Message
		if err := channel.ReadJSON(conn, &msg); err != nil {
			return nil, err
		}
		now := time.Now()
		s.mu.Lock()
		if s.firstMsg.IsZero() {
			s.firstMsg = now
		}
		if msg.Event == channel.EventKeysReleased {
			s.released = now
		}
		s.mu.Unlock()
		if msg.Event != "" {
			s.opts.Logger.Info("guest event", "event", msg.Event, "after", now.Sub(s.start).Round(time.Millisecond))
		}
		if msg.Transcript != nil {
			return msg.Transcript, nil
		}
	}
}

func (s *session) timings() Timings {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t Timings
	if !s.firstMsg.IsZero() {
		t.Boot = s.firstMsg.Sub(s.start)
	}
	if !s.released.IsZero() {
		t.Release = s.released.Sub(s.firstMsg)
	}
	return t
}

func (s *session) serveDevice(ctx context.Context, l net.Listener) {
	conn, err := accept(ctx, l)
	if err != nil {
		return
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	for {
		rd, err := channel.ReadFrame(conn)
		if err != nil {
			return
		}
		var reply []byte
		var reportData [64]byte
		if len(rd) != len(reportData) {
			reply, _ = json.Marshal(map[string]string{"error": fmt.Sprintf("REPORT_DATA must be 64 bytes, got %d", len(rd))})
		} else {
			copy(reportData[:], rd)
			ev, err := s.opts.Device.Evidence(reportData)
			if err != nil {
				reply, _ = json.Marshal(map[string]string{"error": err.Error()})
			} else {
				reply = ev
			}
		}
		if err := channel.WriteFrame(conn, reply); err != nil {
			return
		}
	}
}

func (s *session) serveInputs(ctx context.Context, l net.Listener) {
	conn, err := accept(ctx, l)
	if err != nil {
		return
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	for _, in := range s.plan.Inputs {
		f, err := os.Open(in.Path)
		if err != nil {
			s.opts.Logger.Error("open input", "input", in.Name, "err", err)
			return
		}
		_, err = io.Copy(conn, io.LimitReader(f, in.Size))
		f.Close()
		if err != nil {
			// The guest stops reading when it rejects an input; that is
			// reported in its transcript.
			return
		}
	}
	// The connection stays open until the run ends: closing it early could
	// drop bytes QEMU has not yet passed to the guest.
	<-ctx.Done()
}

func (s *session) serveOutput(ctx context.Context, l net.Listener) {
	conn, err := accept(ctx, l)
	if err != nil {
		return
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if werr := s.writeOutput(h, buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			s.mu.Lock()
			s.outDone = true
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.outErr = err
			}
			s.outCond.Broadcast()
			s.mu.Unlock()
			return
		}
	}
}

// writeOutput appends b to the output file and to h, or drops it when
// finishOutput has already checked the output. It holds s.mu while it
// writes, so finishOutput never checks a file that a write is changing.
func (s *session) writeOutput(h hash.Hash, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outChecked {
		if s.outDropped == 0 {
			s.opts.Logger.Warn("the guest sent output after its transcript; dropping it", "bytes", len(b))
		}
		s.outDropped += int64(len(b))
		return nil
	}
	_, err := s.out.Write(b)
	h.Write(b)
	s.outBytes += int64(len(b))
	s.outHash = h.Sum(nil)
	s.outCond.Broadcast()
	return err
}

// finishOutput waits until all the bytes the transcript announces have
// arrived and checks their SHA-256. Bytes that arrive later are dropped.
func (s *session) finishOutput(ctx context.Context, tr *channel.Transcript) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.outCond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.outBytes < tr.OutputBytes && !s.outDone && ctx.Err() == nil {
		s.outCond.Wait()
	}
	s.outChecked = true
	switch {
	case s.outErr != nil:
		return fmt.Errorf("receive the output: %w", s.outErr)
	case s.outBytes != tr.OutputBytes:
		return fmt.Errorf("received %d bytes of output, the guest sent %d", s.outBytes, tr.OutputBytes)
	case hex.EncodeToString(s.outHash) != tr.OutputSHA256:
		return errors.New("the output's SHA-256 differs from the one the guest reported")
	}
	return nil
}
