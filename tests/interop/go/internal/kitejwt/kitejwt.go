// Package kitejwt mints kite keys and tokens for the interop tests, with the
// claims type of the reference kite (kitekey.KiteClaims) and its JWT library
// at the revision the reference locks (dgrijalva/jwt-go v3.2.0), signed RS256,
// the way the reference Kontrol does.
package kitejwt

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"time"

	jwt "github.com/dgrijalva/jwt-go"
	"github.com/koding/kite/kitekey"
	uuid "github.com/satori/go.uuid"
)

// ParsePrivateKey parses a PEM RSA private key (PKCS#1 or PKCS#8).
func ParsePrivateKey(pemData []byte) (*rsa.PrivateKey, error) {
	return jwt.ParseRSAPrivateKeyFromPEM(pemData)
}

// PublicPEM returns the PKIX ("BEGIN PUBLIC KEY") PEM of key, trimmed, which is
// what `openssl rsa -pubout` prints (less the final newline).
func PublicPEM(key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", err
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return strings.TrimSpace(string(p)), nil
}

func newID() (string, error) {
	id, err := uuid.NewV4()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// KiteKeyOptions are the claims of a kite key.
type KiteKeyOptions struct {
	Issuer     string // iss: Kontrol's username
	Username   string // sub
	KontrolURL string // kontrolURL
	KontrolKey string // kontrolKey: PEM public key of the signer (trimmed)
	ID         string // jti; a new UUID when empty
	IssuedAt   time.Time
}

// MintKiteKey signs a kite key: claims iss, sub, iat, jti, kontrolKey, kontrolURL.
func MintKiteKey(priv *rsa.PrivateKey, o KiteKeyOptions) (string, error) {
	if o.Username == "" {
		return "", errors.New("kite key needs a username (sub)")
	}
	if o.ID == "" {
		id, err := newID()
		if err != nil {
			return "", err
		}
		o.ID = id
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = time.Now()
	}
	claims := &kitekey.KiteClaims{
		StandardClaims: jwt.StandardClaims{
			Issuer:   o.Issuer,
			Subject:  o.Username,
			IssuedAt: o.IssuedAt.UTC().Unix(),
			Id:       o.ID,
		},
		KontrolURL: o.KontrolURL,
		KontrolKey: strings.TrimSpace(o.KontrolKey),
	}
	return jwt.NewWithClaims(jwt.GetSigningMethod("RS256"), claims).SignedString(priv)
}

// TokenOptions are the claims of a token.
type TokenOptions struct {
	Issuer   string // iss: Kontrol's username
	Username string // sub
	Audience string // aud, e.g. "/" or "/username/environment/name"
	TTL      time.Duration
	Leeway   time.Duration // iat and nbf are moved back by it, exp forward (Kontrol's tokenLeeway)
	ID       string        // jti; a new UUID when empty
	NoNBF    bool          // leave nbf out (Kontrol's TokenNoNBF)
	Now      time.Time
}

// MintToken signs a token: claims iss, sub, aud, exp, iat, nbf, jti.
func MintToken(priv *rsa.PrivateKey, o TokenOptions) (string, error) {
	if o.ID == "" {
		id, err := newID()
		if err != nil {
			return "", err
		}
		o.ID = id
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	now := o.Now.UTC()
	claims := &kitekey.KiteClaims{
		StandardClaims: jwt.StandardClaims{
			Issuer:    o.Issuer,
			Subject:   o.Username,
			Audience:  o.Audience,
			ExpiresAt: now.Add(o.TTL).Add(o.Leeway).Unix(),
			IssuedAt:  now.Add(-o.Leeway).Unix(),
			Id:        o.ID,
		},
	}
	if !o.NoNBF {
		claims.NotBefore = now.Add(-o.Leeway).Unix()
	}
	return jwt.NewWithClaims(jwt.GetSigningMethod("RS256"), claims).SignedString(priv)
}

// Subject returns the unverified sub claim of a JWT.
func Subject(token string) (string, error) {
	claims := &kitekey.KiteClaims{}
	if _, _, err := new(jwt.Parser).ParseUnverified(token, claims); err != nil {
		return "", err
	}
	return claims.Subject, nil
}
