// Just enough JSON to read crosscheck.py's output: objects, strings,
// integers. Anything else is a parse error (the test fails on it).
#pragma once

#include <cctype>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace cbt::json {

struct Value {
    enum Kind { kInt, kString, kObject } kind = kInt;
    int64_t number = 0;
    std::string text;
    std::map<std::string, Value> members;

    const Value &at(const std::string &key) const {
        auto it = members.find(key);
        if (kind != kObject || it == members.end()) throw std::runtime_error("json: no member " + key);
        return it->second;
    }
};

class Parser {
public:
    explicit Parser(const std::string &s) : s_(s) {}
    Value parse() {
        Value v = value();
        skip();
        if (i_ != s_.size()) fail("trailing text");
        return v;
    }

private:
    [[noreturn]] void fail(const char *what) { throw std::runtime_error(std::string("json: ") + what); }
    void skip() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    void expect(char c) {
        skip();
        if (i_ >= s_.size() || s_[i_] != c) fail("unexpected character");
        ++i_;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            if (s_[i_] == '\\') fail("escapes are not supported");
            out += s_[i_++];
        }
        expect('"');
        return out;
    }
    Value value() {
        skip();
        if (i_ >= s_.size()) fail("unexpected end");
        Value v;
        if (s_[i_] == '{') {
            v.kind = Value::kObject;
            ++i_;
            skip();
            if (s_[i_] == '}') {
                ++i_;
                return v;
            }
            for (;;) {
                std::string key = string();
                expect(':');
                v.members[key] = value();
                skip();
                if (s_[i_] == ',') {
                    ++i_;
                    continue;
                }
                expect('}');
                return v;
            }
        }
        if (s_[i_] == '"') {
            v.kind = Value::kString;
            v.text = string();
            return v;
        }
        size_t start = i_;
        if (s_[i_] == '-') ++i_;
        while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
        if (start == i_) fail("expected a value");
        v.number = std::stoll(s_.substr(start, i_ - start));
        return v;
    }

    const std::string &s_;
    size_t i_ = 0;
};

inline Value parse(const std::string &s) { return Parser(s).parse(); }

}  // namespace cbt::json
