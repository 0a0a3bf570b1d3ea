// Command proxypeer is the Go reference's side of the proxy interop tests
// (core/tests/proxy_interop.rs):
//
//	proxypeer reverse --kontrol-key FILE [--kontrol-user kontrol]
//	proxypeer tunnel  --kontrol-key FILE [--kontrol-user kontrol] --public-key FILE --private-key FILE
//	proxypeer behind  --kite-key FILE --via reverse|tunnel
//
// reverse: the reference's reverseproxy.New, listening on 127.0.0.1, port 0, public host
// 127.0.0.1 and the bound port. tunnel: tunnelproxy.New with RegisterToKontrol off, on
// 127.0.0.1, public host 127.0.0.1:PORT. Neither registers to a Kontrol; both trust kite
// keys signed by the Kontrol key in --kontrol-key (the kites behind them call `register`
// with their kite key). They print {"port": N, "url": "http://127.0.0.1:N/kite"} when
// ready.
//
// behind: a reference kite serving `square` (authenticated) whose identity, Kontrol URL
// and key come from the kite key; it registers through the proxy at KITE_PROXY_URL with
// RegisterToProxy (its own listener's URL, --via reverse) or RegisterToTunnel (no
// listener needed, --via tunnel) and prints {"url": PUBLIC, "id": ID} once Kontrol has
// registered the public URL.
//
// All exit when stdin is closed or on SIGTERM/SIGINT. Logs go to stderr.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/kitekey"
	"github.com/koding/kite/protocol"
	"github.com/koding/kite/reverseproxy"
	"github.com/koding/kite/tunnelproxy"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func read(file string) string {
	b, err := ioutil.ReadFile(file)
	if err != nil {
		fail("%s", err)
	}
	return strings.TrimSpace(string(b))
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: proxypeer reverse|tunnel|behind [flags]")
	}
	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	kontrolKey := fs.String("kontrol-key", "", "Kontrol's public key `FILE`")
	kontrolUser := fs.String("kontrol-user", "kontrol", "Kontrol's username")
	publicKey := fs.String("public-key", "", "tunnel token public key `FILE`")
	privateKey := fs.String("private-key", "", "tunnel token private key `FILE`")
	kiteKey := fs.String("kite-key", "", "the kite's kite key `FILE` (behind)")
	via := fs.String("via", "reverse", "reverse or tunnel (behind)")
	fs.Parse(os.Args[2:])
	if os.Args[1] == "behind" {
		behind(*kiteKey, *via)
		return
	}
	if *kontrolKey == "" {
		fail("--kontrol-key is required")
	}

	conf := config.New()
	conf.Username = *kontrolUser
	conf.KontrolUser = *kontrolUser
	conf.KontrolKey = read(*kontrolKey)
	conf.IP = "127.0.0.1"

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fail("%s", err)
	}
	port := l.Addr().(*net.TCPAddr).Port

	switch os.Args[1] {
	case "reverse":
		conf.Port = port
		p := reverseproxy.New(conf)
		p.Scheme = "http"
		p.PublicHost = "127.0.0.1"
		p.PublicPort = port
		// The reference's ListenAndServe binds its own listener; serve its handlers on
		// ours (same mux: "/" the kite, "/proxy/" the proxy).
		mux := http.NewServeMux()
		mux.Handle("/", p.Kite)
		mux.Handle("/proxy/", p)
		go http.Serve(l, mux)
	case "tunnel":
		if *publicKey == "" || *privateKey == "" {
			fail("--public-key and --private-key are required")
		}
		l.Close()
		conf.Port = port
		p := tunnelproxy.New(conf, "0.0.2", read(*publicKey), read(*privateKey))
		p.PublicHost = fmt.Sprintf("127.0.0.1:%d", port)
		p.RegisterToKontrol = false
		p.Start()
	default:
		fail("unknown proxy %q", os.Args[1])
	}

	json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"port": port,
		"url":  fmt.Sprintf("http://127.0.0.1:%d/kite", port),
	})

	waitForEnd()
}

// waitForEnd returns once stdin is closed or a signal arrives.
func waitForEnd() {
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
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

func behind(kiteKey, via string) {
	key, err := kitekey.ParseFile(kiteKey)
	if err != nil {
		fail("reading --kite-key: %s", err)
	}
	c := config.New()
	if err := c.ReadToken(key); err != nil {
		fail("reading --kite-key: %s", err)
	}
	c.IP = "127.0.0.1"
	c.Port = 0
	c.Environment = "test"
	k := kite.NewWithConfig("gomath", "1.0.0", c)
	k.HandleFunc("square", func(r *kite.Request) (interface{}, error) {
		n := r.Args.One().MustFloat64()
		return n * n, nil
	})
	registered := make(chan string, 1)
	k.OnRegister(func(r *protocol.RegisterResult) {
		select {
		case registered <- r.URL:
		default:
		}
	})
	switch via {
	case "reverse":
		go k.Run()
		<-k.ServerReadyNotify()
		u := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", k.Port()), Path: "/kite"}
		go k.RegisterToProxy(u, &protocol.KontrolQuery{Username: c.KontrolUser, Environment: c.Environment, Name: "proxy"})
	case "tunnel":
		go k.RegisterToTunnel()
	default:
		fail("--via: want reverse or tunnel, got %q", via)
	}
	select {
	case u := <-registered:
		json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"url": u, "id": k.Id})
	case <-time.After(30 * time.Second):
		fail("not registered through the proxy within 30s")
	}
	waitForEnd()
	k.Close()
}
