// Command kontrolpeer is the Go reference kite's side of the Kontrol interop
// tests (core/tests/kontrol_interop.rs): a kite that registers to a Kontrol,
// and a client that finds kites through a Kontrol and calls them. Both take
// their identity, Kontrol URL and Kontrol key from a kite key, like a kite
// reading its kite.key (config.ReadToken).
//
//	kontrolpeer serve --kite-key FILE [--name math] [--version 1.0.0]
//	                  [--environment test] [--region here] [--http]
//	kontrolpeer find  --kite-key FILE --username U [--environment E] [--name N]
//	                  [--version V] [--region R] [--hostname H] [--id ID]
//	                  [--method square] [--arg 7] [--more] [--timeout 30s]
//
// serve: a kite with one method, `square` (authentication required: tokens
// from the Kontrol that signed the kite key are accepted), listening on
// 127.0.0.1, port 0. It registers with k.RegisterForever (or, with --http,
// k.RegisterHTTP: POST /register, then heartbeats over HTTP) and, once
// registered, prints one JSON line
//
//	{"port": N, "url": "http://127.0.0.1:N/kite", "kite": {username, environment, name, version, region, hostname, id}}
//
// on stdout (logs go to stderr). It exits when stdin is closed or on
// SIGTERM/SIGINT; a first registration that fails exits 1.
//
// find: k.GetKites(query), then for every kite returned: Dial, and
// Tell(method, arg) with the token Kontrol handed out. Prints one JSON line
//
//	{"kites": [{"kite": {...}, "url": U, "token": JWT, "result": R, "error": null | "..."}]}
//
// With --more, the line also has "getToken" and "getTokenAgain" (GetToken for the
// first kite, twice), "getTokenForce" (GetTokenForce) and "getKey" (GetKey), or
// "<name>Error" for a step that failed.
//
// It exits 0 when at least one kite was found and every call succeeded, 1
// otherwise (with {"error": "..."} when GetKites itself failed). --timeout
// bounds the whole run (the reference's GetKites waits for ever for its
// Kontrol connection).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/dnode"
	"github.com/koding/kite/kitekey"
	"github.com/koding/kite/protocol"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "find":
		find(os.Args[2:])
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kontrolpeer serve --kite-key FILE [--name N] [--version V] [--environment E] [--region R] [--http]")
	fmt.Fprintln(os.Stderr, "       kontrolpeer find --kite-key FILE --username U [--environment E] [--name N] [--version V] [--region R] [--hostname H] [--id ID] [--method M] [--arg X] [--more] [--timeout D]")
	os.Exit(2)
}

// configFromKiteKey is config.Get without the kite.key lookup in KITE_HOME:
// the defaults, then the key's claims (username, Kontrol user/URL/key, id).
func configFromKiteKey(file string) *config.Config {
	if file == "" {
		fail(2, "--kite-key is required")
	}
	key, err := kitekey.ParseFile(file)
	if err != nil {
		fail(2, "reading --kite-key: %s", err)
	}
	c := config.New()
	if err := c.ReadToken(key); err != nil {
		fail(2, "reading --kite-key: %s", err)
	}
	if err := c.ReadEnvironmentVariables(); err != nil {
		fail(2, "%s", err)
	}
	return c
}

func newKite(name, version string, c *config.Config) *kite.Kite {
	k := kite.NewWithConfig(name, version, c)
	if strings.EqualFold(os.Getenv("KITE_LOG_LEVEL"), "debug") {
		// KITE_LOG_LEVEL alone leaves the log handler at INFO.
		k.SetLogLevel(kite.DEBUG)
	}
	return k
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	kiteKey := fs.String("kite-key", "", "the kite's kite key `FILE`")
	name := fs.String("name", "math", "kite name")
	version := fs.String("version", "1.0.0", "kite version")
	environment := fs.String("environment", "test", "kite environment")
	region := fs.String("region", "here", "kite region")
	overHTTP := fs.Bool("http", false, "register with RegisterHTTP instead of RegisterForever")
	fs.Parse(args)

	c := configFromKiteKey(*kiteKey)
	c.Environment = *environment
	c.Region = *region
	c.IP = "127.0.0.1"
	c.Port = 0

	k := newKite(*name, *version, c)
	k.HandleFunc("square", func(r *kite.Request) (interface{}, error) {
		n := r.Args.One().MustFloat64()
		return n * n, nil
	})

	go k.Run()
	<-k.ServerReadyNotify()
	port := k.Port()
	u := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port), Path: "/kite"}

	if *overHTTP {
		// RegisterHTTP keeps sending heartbeats and registers again when
		// Kontrol answers "registeragain" (RegisterHTTPForever only adds
		// retries of the first attempt, 30 s apart, and no ready signal).
		if _, err := k.RegisterHTTP(u); err != nil {
			fail(1, "registering over HTTP to %s: %s", c.KontrolURL, err)
		}
	} else if err := k.RegisterForever(u); err != nil {
		fail(1, "registering to %s: %s", c.KontrolURL, err)
	}

	ready, _ := json.Marshal(map[string]interface{}{
		"port": port,
		"url":  u.String(),
		"kite": k.Kite(),
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
	fmt.Fprintf(os.Stderr, "kontrolpeer serve: exiting (%s)\n", reason)
	go func() {
		time.Sleep(2 * time.Second)
		os.Exit(0)
	}()
	k.Close()
	os.Exit(0)
}

type found struct {
	Kite   protocol.Kite   `json:"kite"`
	URL    string          `json:"url"`
	Token  string          `json:"token"`
	Result json.RawMessage `json:"result"`
	Error  *string         `json:"error"`
}

func find(args []string) {
	fs := flag.NewFlagSet("find", flag.ExitOnError)
	kiteKey := fs.String("kite-key", "", "the client's kite key `FILE`")
	var q protocol.KontrolQuery
	fs.StringVar(&q.Username, "username", "", "query: username (required)")
	fs.StringVar(&q.Environment, "environment", "", "query: environment")
	fs.StringVar(&q.Name, "name", "", "query: name")
	fs.StringVar(&q.Version, "version", "", "query: version or version constraint")
	fs.StringVar(&q.Region, "region", "", "query: region")
	fs.StringVar(&q.Hostname, "hostname", "", "query: hostname")
	fs.StringVar(&q.ID, "id", "", "query: id")
	method := fs.String("method", "square", "method to call on every kite found")
	arg := fs.Float64("arg", 7, "its argument")
	more := fs.Bool("more", false, "then GetToken (twice), GetTokenForce for the first kite found, and GetKey")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	fs.Parse(args)

	time.AfterFunc(*timeout, func() {
		fmt.Fprintf(os.Stderr, "kontrolpeer find: timed out after %s\n", *timeout)
		os.Exit(3)
	})

	c := configFromKiteKey(*kiteKey)
	k := newKite("kontrolpeer", "1.0.0", c)
	out := json.NewEncoder(os.Stdout)

	clients, err := k.GetKites(&q)
	if err != nil {
		out.Encode(map[string]string{"error": err.Error()})
		os.Exit(1)
	}

	ok := len(clients) > 0
	results := make([]found, 0, len(clients))
	for _, cl := range clients {
		f := found{Kite: cl.Kite, URL: cl.URL, Result: json.RawMessage("null")}
		if cl.Auth != nil {
			f.Token = cl.Auth.Key
		}
		res, err := call(cl, *method, *arg)
		if err != nil {
			msg := err.Error()
			f.Error = &msg
			ok = false
		} else if res != nil {
			f.Result = json.RawMessage(res.Raw)
		}
		cl.Close()
		results = append(results, f)
	}
	report := map[string]interface{}{"kites": results}
	if *more && len(clients) > 0 {
		// GetToken twice (Kontrol caches tokens), GetTokenForce, GetKey.
		first := &clients[0].Kite
		steps := []struct {
			name string
			do   func() (string, error)
		}{
			{"getToken", func() (string, error) { return k.GetToken(first) }},
			{"getTokenAgain", func() (string, error) { return k.GetToken(first) }},
			{"getTokenForce", func() (string, error) { return k.GetTokenForce(first) }},
			{"getKey", k.GetKey},
		}
		for _, step := range steps {
			v, err := step.do()
			if err != nil {
				report[step.name+"Error"] = err.Error()
				ok = false
				continue
			}
			report[step.name] = v
		}
	}
	out.Encode(report)
	if !ok {
		os.Exit(1)
	}
	os.Exit(0)
}

func call(c *kite.Client, method string, arg float64) (*dnode.Partial, error) {
	if err := c.Dial(); err != nil {
		return nil, fmt.Errorf("dial %s: %s", c.URL, err)
	}
	return c.TellWithTimeout(method, 10*time.Second, arg)
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kontrolpeer: "+format+"\n", args...)
	os.Exit(code)
}
