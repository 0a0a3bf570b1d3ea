// Command kontrol runs the Go reference Kontrol (github.com/koding/kite/kontrol)
// on its PostgreSQL storage, set up the way the reference's own binary
// (kontrol/kontrol/main.go) sets it up, for the Kontrol interop tests
// (core/tests/kontrol_interop.rs):
//
//	kontrol --public-key FILE --private-key FILE [--kite-key FILE] [--username NAME]
//	        --postgres-port N --postgres-dbname DB [--postgres-host H]
//	        [--postgres-username U] [--postgres-password P]
//
// The database must already hold the reference's schema ("kite"."kite" and
// "kite"."key"); the reference never creates it (an operator runs its SQL
// files). The key pair is added with kontrol.AddKeyPair("", public, private),
// as the reference binary does, so the key table gets a row with a fresh UUID.
//
// --kite-key is Kontrol's own kite.key (what `kontrol --initial` writes to
// KITE_HOME for the reference binary, which reads it with config.MustGet);
// with it the Kontrol kite takes its username, id and Kontrol URL/key from the
// key, exactly as the reference does. Without it, --username (default
// "kontrol") names the Kontrol kite, the issuer of the tokens it signs.
//
// It listens on 127.0.0.1 on an ephemeral port (the reference's kontrol.New
// turns port 0 into 4000; the port is set back to 0 before Run), prints one
// JSON line
//
//	{"port": <int>, "url": "http://127.0.0.1:<port>/kite"}
//
// on stdout when ready (logs go to stderr), and exits when stdin is closed or
// on SIGTERM/SIGINT.
//
// Reference quirk: kontrol.NewPostgres builds a libpq key/value string with
// "password=%s" unquoted; with an empty password lib/pq reads the next
// "sslmode=disable" as the password and then insists on SSL. So this program
// refuses an empty --postgres-password; a server with trust authentication
// ignores whatever is given.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/koding/kite"
	"github.com/koding/kite/config"
	"github.com/koding/kite/kitekey"
	"github.com/koding/kite/kontrol"
)

func main() {
	publicKeyFile := flag.String("public-key", "", "Kontrol's PEM public key `FILE` (required)")
	privateKeyFile := flag.String("private-key", "", "Kontrol's PEM private key `FILE` (required)")
	kiteKeyFile := flag.String("kite-key", "", "Kontrol's own kite.key `FILE` (as written by the reference's `kontrol --initial`)")
	username := flag.String("username", "kontrol", "the Kontrol kite's username, when no --kite-key is given")
	version := flag.String("version", "0.0.1", "the Kontrol kite's version (the reference binary's default)")
	pgHost := flag.String("postgres-host", "127.0.0.1", "PostgreSQL host")
	pgPort := flag.Int("postgres-port", 5432, "PostgreSQL port")
	pgUser := flag.String("postgres-username", "postgres", "PostgreSQL role")
	pgPassword := flag.String("postgres-password", "unused", "PostgreSQL password (must not be empty, see the package docs)")
	pgDB := flag.String("postgres-dbname", "", "PostgreSQL database holding the reference's schema (required)")
	flag.Parse()

	if os.Getenv("KITE_LOG_NOCOLOR") == "" {
		os.Setenv("KITE_LOG_NOCOLOR", "1")
	}
	if *publicKeyFile == "" || *privateKeyFile == "" || *pgDB == "" {
		fail(2, "--public-key, --private-key and --postgres-dbname are required")
	}
	if *pgPassword == "" {
		fail(2, "--postgres-password must not be empty (the reference's connection string would lose sslmode=disable)")
	}
	publicKey := readFile(*publicKeyFile, "--public-key")
	privateKey := readFile(*privateKeyFile, "--private-key")

	conf := config.New()
	if *kiteKeyFile != "" {
		key, err := kitekey.ParseFile(*kiteKeyFile)
		if err != nil {
			fail(2, "reading --kite-key: %s", err)
		}
		if err := conf.ReadToken(key); err != nil {
			fail(2, "reading --kite-key: %s", err)
		}
	} else {
		conf.Username = *username
	}
	conf.IP = "127.0.0.1"

	k := kontrol.New(conf, *version)
	// kontrol.New replaces port 0 with its default 4000; listen on an ephemeral one.
	k.Kite.Config.Port = 0
	if strings.EqualFold(os.Getenv("KITE_LOG_LEVEL"), "debug") {
		k.Kite.SetLogLevel(kite.DEBUG)
	}

	p := kontrol.NewPostgres(&kontrol.PostgresConfig{
		Host:           *pgHost,
		Port:           *pgPort,
		Username:       *pgUser,
		Password:       *pgPassword,
		DBName:         *pgDB,
		ConnectTimeout: 20, // the reference's default (a multiconfig tag, not applied here)
	}, k.Kite.Log)
	k.SetStorage(p)
	k.SetKeyPairStorage(p)

	// The reference binary ignores this error; a test wants to know.
	if err := k.AddKeyPair("", publicKey, privateKey); err != nil {
		fail(1, "adding the key pair: %s", err)
	}

	go k.Run()
	<-k.Kite.ServerReadyNotify()

	port := k.Kite.Port()
	ready, _ := json.Marshal(map[string]interface{}{
		"port": port,
		"url":  fmt.Sprintf("http://127.0.0.1:%d/kite", port),
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
	fmt.Fprintf(os.Stderr, "kontrol: exiting (%s)\n", reason)
	go func() {
		time.Sleep(2 * time.Second)
		os.Exit(0)
	}()
	k.Close()
	os.Exit(0)
}

func readFile(name, flagName string) string {
	data, err := ioutil.ReadFile(name)
	if err != nil {
		fail(2, "reading %s: %s", flagName, err)
	}
	return string(data)
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kontrol: "+format+"\n", args...)
	os.Exit(code)
}
