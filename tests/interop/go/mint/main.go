// Command mint signs a kite key or a token for the interop tests, RS256, with
// the reference kite's claims type (kitekey.KiteClaims) and its locked JWT
// library (dgrijalva/jwt-go v3.2.0). It prints the JWT on stdout.
//
//	mint --private-key FILE --kind kitekey --username NAME [--issuer NAME] [--kontrol-url URL] [--public-key FILE]
//	mint --private-key FILE --kind token --username NAME --audience AUD [--issuer NAME] [--ttl 48h] [--leeway 0]
//
// Kite key claims: iss, sub, iat, jti, kontrolKey, kontrolURL (as the reference
// Kontrol's registerUser). Token claims: iss, sub, aud, exp, iat, nbf, jti (as
// its generateToken; exp = now+ttl+leeway, iat = nbf = now-leeway).
// kontrolKey is the trimmed PEM of --public-key, or, without it, the PKIX
// ("BEGIN PUBLIC KEY") PEM derived from the private key, which is what
// `openssl rsa -pubout` writes.
package main

import (
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"
	"time"

	"kiteinterop/internal/kitejwt"
)

func main() {
	privFile := flag.String("private-key", "", "PEM RSA private key `FILE` of the (test) Kontrol (PKCS#1 or PKCS#8)")
	pubFile := flag.String("public-key", "", "PEM public key `FILE` to put in kontrolKey (kitekey; default: derived from --private-key)")
	kind := flag.String("kind", "kitekey", "kitekey or token")
	username := flag.String("username", "testuser", "sub claim")
	issuer := flag.String("issuer", "testuser", "iss claim (Kontrol's username)")
	audience := flag.String("audience", "/", "aud claim (token)")
	ttl := flag.Duration("ttl", 48*time.Hour, "token lifetime (token)")
	leeway := flag.Duration("leeway", 0, "moves iat/nbf back and exp forward (token)")
	kontrolURL := flag.String("kontrol-url", "http://127.0.0.1:4000/kite", "kontrolURL claim (kitekey)")
	id := flag.String("id", "", "jti claim (default: a new UUID)")
	flag.Parse()

	if *privFile == "" {
		fail("--private-key is required")
	}
	data, err := ioutil.ReadFile(*privFile)
	if err != nil {
		fail("reading --private-key: %s", err)
	}
	priv, err := kitejwt.ParsePrivateKey(data)
	if err != nil {
		fail("parsing --private-key: %s", err)
	}

	var jwt string
	switch *kind {
	case "kitekey":
		var pub string
		if *pubFile != "" {
			p, err := ioutil.ReadFile(*pubFile)
			if err != nil {
				fail("reading --public-key: %s", err)
			}
			pub = strings.TrimSpace(string(p))
		} else if pub, err = kitejwt.PublicPEM(priv); err != nil {
			fail("deriving the public key: %s", err)
		}
		jwt, err = kitejwt.MintKiteKey(priv, kitejwt.KiteKeyOptions{
			Issuer:     *issuer,
			Username:   *username,
			KontrolURL: *kontrolURL,
			KontrolKey: pub,
			ID:         *id,
		})
	case "token":
		jwt, err = kitejwt.MintToken(priv, kitejwt.TokenOptions{
			Issuer:   *issuer,
			Username: *username,
			Audience: *audience,
			TTL:      *ttl,
			Leeway:   *leeway,
			ID:       *id,
		})
	default:
		fail("--kind must be kitekey or token, not %q", *kind)
	}
	if err != nil {
		fail("signing: %s", err)
	}
	fmt.Println(jwt)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "mint: "+format+"\n", args...)
	os.Exit(2)
}
