#include <doctest/doctest.h>

#include <stdexcept>

#include "ringsock/endpoint.hpp"

using ringsock::address_family;
using ringsock::endpoint;

TEST_SUITE("endpoint") {
  TEST_CASE("an IPv4 endpoint parses and prints back the same") {
    endpoint e = endpoint::parse("127.0.0.1:8080");
    CHECK(e.family() == address_family::ipv4);
    CHECK(e.port() == 8080);
    CHECK(e.size() == sizeof(sockaddr_in));
    CHECK(e.to_string() == "127.0.0.1:8080");
  }

  TEST_CASE("an IPv6 endpoint parses in brackets and prints back the same") {
    endpoint e = endpoint::parse("[::1]:80");
    CHECK(e.family() == address_family::ipv6);
    CHECK(e.port() == 80);
    CHECK(e.to_string() == "[::1]:80");
    CHECK(endpoint::parse("[fe80::1:2]:65535").port() == 65535);
  }

  TEST_CASE("Unix-domain endpoints: paths and abstract names") {
    endpoint p = endpoint::parse("unix:/tmp/x.sock");
    CHECK(p.family() == address_family::unix_domain);
    CHECK(p.port() == 0);
    CHECK(p.to_string() == "unix:/tmp/x.sock");
    endpoint a = endpoint::parse("unix:@ringsock-abstract");
    CHECK(a.to_string() == "unix:@ringsock-abstract");
    CHECK_FALSE(a == p);
  }

  TEST_CASE("loopback, any and equality") {
    CHECK(endpoint::loopback(address_family::ipv4, 5).to_string() == "127.0.0.1:5");
    CHECK(endpoint::loopback(address_family::ipv6, 5).to_string() == "[::1]:5");
    CHECK(endpoint::any(address_family::ipv4).to_string() == "0.0.0.0:0");
    CHECK(endpoint::parse("10.0.0.1:1") == endpoint::ipv4("10.0.0.1", 1));
    CHECK(endpoint().family() == address_family::unspecified);
  }

  TEST_CASE("malformed strings are rejected with a message naming the string") {
    const char* bad[] = {"",           "127.0.0.1",     "127.0.0.1:",     "127.0.0.1:70000",
                         "1.2.3:80",   "::1:80",        "[::1]80",        "[::1:80",
                         "[zz::1]:80", "host:80",       "unix:",          "127.0.0.1:8x",
                         "127.0.0.1:-1", "[127.0.0.1]:80"};
    for (const char* s : bad) {
      CAPTURE(s);
      try {
        (void)endpoint::parse(s);
        FAIL("parsed");
      } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find(std::string("'") + s + "'") != std::string::npos);
      }
    }
    CHECK_THROWS_AS(endpoint::ipv4("::1", 1), std::invalid_argument);
    CHECK_THROWS_AS(endpoint::unix_path(std::string(200, 'x')), std::invalid_argument);
  }
}
