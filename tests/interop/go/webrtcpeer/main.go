// Command webrtcpeer is the Go reference kite's side of the WebRTC signalling interop
// tests (core/tests/webrtc.rs).
//
//	webrtcpeer relay
//	webrtcpeer peer --kite-key FILE [--name webrtc-go]
//
// relay: a kite built with Config.UseWebRTC (it serves kite.handleWebRTC, the reference's
// relay), with authentication disabled, listening on 127.0.0.1, port 0. Prints
// {"port": N, "url": "http://127.0.0.1:N/kite", "id": ID} when ready.
//
// peer: a kite that takes its identity, Kontrol URL and key from the kite key, serves
// kite.handleWebRTC itself (a message whose payload is {"fail": TEXT} is answered with
// the error TEXT, any other is printed as {"received": MESSAGE}), and connects to
// Kontrol. Prints {"id": ID} when ready. Then every line on stdin is a signalling message
// sent with Kite.SendWebRTCRequest; each is answered on stdout with
// {"sent": N, "error": null | "..."}.
//
// Both exit when stdin is closed or on SIGTERM/SIGINT. Logs go to stderr.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/kitekey"
	"github.com/koding/kite/protocol"
)

var out = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(v interface{}) {
	out.Lock()
	defer out.Unlock()
	out.enc.Encode(v)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}
	switch os.Args[1] {
	case "relay":
		relay()
	case "peer":
		peer(os.Args[2:])
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: webrtcpeer relay | webrtcpeer peer --kite-key FILE [--name N]")
	os.Exit(2)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// waitForEnd hands each stdin line to lines and returns once stdin is closed or a signal arrives.
func waitForEnd(lines func(string)) {
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if lines != nil {
				lines(sc.Text())
			}
		}
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-done:
	case <-sig:
	}
}

func relay() {
	c := config.New()
	c.IP = "127.0.0.1"
	c.Port = 0
	c.Username = "testuser"
	c.UseWebRTC = true
	c.DisableAuthentication = true
	k := kite.NewWithConfig("webrtc-relay", "1.0.0", c)
	go k.Run()
	<-k.ServerReadyNotify()
	emit(map[string]interface{}{
		"port": k.Port(),
		"url":  fmt.Sprintf("http://127.0.0.1:%d/kite", k.Port()),
		"id":   k.Id,
	})
	waitForEnd(nil)
	k.Close()
}

func peer(args []string) {
	fs := flag.NewFlagSet("peer", flag.ExitOnError)
	kiteKey := fs.String("kite-key", "", "the kite's kite key `FILE`")
	name := fs.String("name", "webrtc-go", "kite name")
	fs.Parse(args)
	key, err := kitekey.ParseFile(*kiteKey)
	if err != nil {
		fail("reading --kite-key: %s", err)
	}
	c := config.New()
	if err := c.ReadToken(key); err != nil {
		fail("reading --kite-key: %s", err)
	}
	c.IP = "127.0.0.1"
	c.Port = 0
	k := kite.NewWithConfig(*name, "1.0.0", c)
	k.HandleFunc(kite.WebRTCHandlerName, func(r *kite.Request) (interface{}, error) {
		var msg protocol.WebRTCSignalMessage
		if err := r.Args.One().Unmarshal(&msg); err != nil {
			return nil, err
		}
		var p struct {
			Fail string `json:"fail"`
		}
		if json.Unmarshal(msg.Payload, &p) == nil && p.Fail != "" {
			return nil, errors.New(p.Fail)
		}
		emit(map[string]interface{}{"received": &msg})
		return nil, nil
	})
	if err := k.SetupKontrolClient(); err != nil {
		fail("kontrol client: %s", err)
	}
	emit(map[string]interface{}{"id": k.Id})
	n := 0
	waitForEnd(func(line string) {
		n++
		var msg protocol.WebRTCSignalMessage
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			emit(map[string]interface{}{"sent": n, "error": "bad input line: " + err.Error()})
			return
		}
		var e interface{}
		if err := k.SendWebRTCRequest(&msg); err != nil {
			e = err.Error()
		}
		emit(map[string]interface{}{"sent": n, "error": e})
	})
	k.Close()
}
