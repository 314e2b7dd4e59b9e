package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, msg := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("y"), 70000)} {
		if err := WriteFrame(&buf, msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{0, 1, 70000} {
		got, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("frame of %d bytes, want %d", len(got), want)
		}
	}
	if _, err := ReadFrame(&buf); !errors.Is(err, io.EOF) {
		t.Errorf("read past the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameRejectsOversizeLength(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrame+1)
	if _, err := ReadFrame(bytes.NewReader(hdr[:])); err == nil {
		t.Fatal("ReadFrame accepted a length over MaxFrame")
	}
	if err := WriteFrame(io.Discard, make([]byte, MaxFrame+1)); err == nil {
		t.Fatal("WriteFrame accepted a frame over MaxFrame")
	}
}

func TestReadFrameTruncatedBody(t *testing.T) {
	var buf bytes.Buffer
	WriteFrame(&buf, []byte("hello"))
	short := buf.Bytes()[:buf.Len()-2]
	if _, err := ReadFrame(bytes.NewReader(short)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFrame of a cut frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestJSONFrame(t *testing.T) {
	var buf bytes.Buffer
	in := Message{Event: EventKeysReleased}
	if err := WriteJSON(&buf, in); err != nil {
		t.Fatal(err)
	}
	var out Message
	if err := ReadJSON(&buf, &out); err != nil {
		t.Fatal(err)
	}
	if out.Event != EventKeysReleased || out.Transcript != nil {
		t.Errorf("ReadJSON = %+v", out)
	}
}
