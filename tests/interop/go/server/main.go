// Command server is the interop test server of tests/interop/SCENARIOS.md,
// built on the Go reference kite (github.com/koding/kite).
//
// It listens on 127.0.0.1 on an ephemeral port, prints one JSON line
//
//	{"port": <int>, "url": "http://127.0.0.1:<port>/kite"}
//
// (https with --tls-cert and --tls-key: the reference's UseTLSFile)
// on stdout when ready (logs go to stderr), and exits when stdin is closed or
// on SIGTERM/SIGINT.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"os"
	"os/signal"
	"syscall"
	"time"

	"kiteinterop/internal/interopsrv"
)

func main() {
	kontrolKeyFile := flag.String("kontrol-key", "", "PEM public key `FILE` of the (test) Kontrol; kite keys and tokens signed by it are trusted")
	kontrolUser := flag.String("kontrol-user", "testuser", "expected issuer of tokens")
	username := flag.String("username", "testuser", "the kite's own username")
	kiteKeyFile := flag.String("kite-key", "", "the kite's own kite key `FILE` (JWT), used when it calls back")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM; with --tls-key)")
	tlsKey := flag.String("tls-key", "", "the private key `FILE` (PEM) of --tls-cert")
	noGuard := flag.Bool("no-xhr-poll-guard", false, "serve the reference's SockJS handler without the work-around for its xhr-polling race (see internal/interopsrv/xhrguard.go)")
	flag.Parse()

	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}

	opts := interopsrv.Options{KontrolUser: *kontrolUser, Username: *username, NoXHRPollGuard: *noGuard}
	if *kontrolKeyFile != "" {
		opts.KontrolKey = readFile(*kontrolKeyFile, "--kontrol-key")
	}
	if *kiteKeyFile != "" {
		opts.KiteKey = readFile(*kiteKeyFile, "--kite-key")
	}

	k := interopsrv.New(opts)
	scheme := "http"
	if *tlsCert != "" || *tlsKey != "" {
		k.UseTLSFile(*tlsCert, *tlsKey)
		scheme = "https"
	}
	go k.Run()
	<-k.ServerReadyNotify()

	port := k.Port()
	ready, _ := json.Marshal(map[string]interface{}{
		"port": port,
		"url":  fmt.Sprintf("%s://127.0.0.1:%d/kite", scheme, port),
	})
	os.Stdout.Write(append(ready, '\n'))

	done := make(chan string, 2)
	go func() {
		io.Copy(ioutil.Discard, os.Stdin)
		done <- "stdin closed"
	}()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		done <- (<-sig).String()
	}()

	reason := <-done
	fmt.Fprintf(os.Stderr, "interop server: exiting (%s)\n", reason)
	go func() {
		// Close waits on nothing in particular, but never let it hold the exit.
		time.Sleep(2 * time.Second)
		os.Exit(0)
	}()
	k.Close()
	os.Exit(0)
}

func readFile(name, flagName string) string {
	data, err := ioutil.ReadFile(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop server: reading %s: %s\n", flagName, err)
		os.Exit(2)
	}
	return string(data)
}
