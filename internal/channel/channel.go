// Package channel defines how the launcher and the guest agent talk: the
// names of the virtio-serial ports, the length-prefixed frames sent on
// them, and the messages those frames carry.
//
// The host side is untrusted. The guest accepts a job only after it has
// checked that the job's canonical spec hashes to the HOST_DATA of its own
// attestation report. A host that changes the manifest therefore gets a
// guest that does not run and a broker that releases no keys.
package channel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Port names, as given to QEMU's virtserialport and found by the guest in
// /sys/class/virtio-ports/*/name.
const (
	PortControl = "cove.ctl" // frames both ways: Manifest in, Event and Transcript out
	PortSNP     = "cove.snp" // the sim-snp device: REPORT_DATA in, evidence out
	PortInput   = "cove.in"  // the sealed inputs' bytes, one after another
	PortOutput  = "cove.out" // the sealed output
)

// GuestKBSAddr is the address at which the guest reaches the broker. QEMU
// user networking forwards it to a program on the host that connects to
// the broker's real address.
const GuestKBSAddr = "10.0.2.100:8443"

// GuestAddr is the guest's own address on QEMU's user network.
const GuestAddr = "10.0.2.15/24"

// MaxFrame is the largest frame accepted. Frames carry JSON metadata, never
// job data, so 4 MiB is far more than any real frame needs.
const MaxFrame = 4 << 20

// WriteFrame writes b as one frame: a 4-byte big-endian length, then b.
func WriteFrame(w io.Writer, b []byte) error {
	if len(b) > MaxFrame {
		return fmt.Errorf("channel: frame of %d bytes exceeds the maximum of %d", len(b), MaxFrame)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame written by WriteFrame.
func ReadFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxFrame {
		return nil, fmt.Errorf("channel: frame of %d bytes exceeds the maximum of %d", size, MaxFrame)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// WriteJSON writes v as one JSON frame.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, b)
}

// ReadJSON reads one frame and decodes it into v.
func ReadJSON(r io.Reader, v any) error {
	b, err := ReadFrame(r)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Manifest is the launcher's first message to the guest on PortControl.
type Manifest struct {
	// Job is the canonical job spec, the bytes whose SHA-256 is the job
	// digest. The guest parses its command, inputs and recipient from here.
	Job []byte `json:"job"`
	// KBSURL is the broker's URL as the guest reaches it.
	KBSURL string `json:"kbs_url"`
	// KBSCACert is the PEM certificate of the CA that signed the broker's
	// TLS certificate. The guest checks it against the SHA-256 that the
	// canonical job names, so a host cannot substitute a broker of its own.
	KBSCACert []byte `json:"kbs_ca_cert"`
	// InputSizes gives the size in bytes of each sealed input, in the
	// order of the job's inputs, as sent on PortInput.
	InputSizes []int64 `json:"input_sizes"`
}

// Message is a frame the guest sends on PortControl: progress events while
// the job runs, then exactly one transcript.
type Message struct {
	Event      string      `json:"event,omitempty"` // EventAttesting or EventKeysReleased
	Transcript *Transcript `json:"transcript,omitempty"`
}

// Events the guest reports as they happen, so the launcher can time the
// stages of a job.
const (
	EventAttesting    = "attesting"
	EventKeysReleased = "keys_released"
)

// Transcript is the guest's account of a job, written next to the output.
type Transcript struct {
	JobDigest string `json:"job_digest"`
	// OK is true only when every input decrypted completely, the command
	// exited 0, and the whole output was sealed and sent.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// EvidenceSHA256 is the SHA-256 of the evidence JSON sent to the broker.
	EvidenceSHA256 string `json:"evidence_sha256,omitempty"`
	// Verdict is the broker's decision as the guest saw it.
	Verdict string `json:"verdict,omitempty"`
	// Token is the broker's attestation token (a JWT, signed, not secret
	// to the job's submitter).
	Token        string `json:"token,omitempty"`
	ExitCode     int    `json:"exit_code"`
	OutputBytes  int64  `json:"output_bytes"`
	OutputSHA256 string `json:"output_sha256,omitempty"`
}
