package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"time"
)

// forwardCommand joins standard input and output to one TCP connection.
// QEMU's guestfwd starts it for each guest connection to the broker, so
// the guest reaches exactly one host address and nothing else.
func forwardCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("forward", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, "usage: cove forward HOST:PORT\n") }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", fs.Arg(0))
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, os.Stdin)
		conn.(*net.TCPConn).CloseWrite()
	}()
	// The broker's side ends the exchange: it closes after the guest
	// half-closes or hangs up.
	_, err = io.Copy(stdout, conn)
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
