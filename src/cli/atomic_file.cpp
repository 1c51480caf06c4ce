#include "cli/atomic_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.hpp"

namespace memtax {

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
    // A temporary file in the target's directory, flushed to disk, then renamed over the target:
    // a reader (or a run killed half-way) sees the old report or the new one, never a mix.
    // std::ofstream cannot fsync, so the POSIX calls are used directly.
    namespace fs = std::filesystem;
    fs::path target(path);
    std::error_code ec;
    if (fs::is_directory(target, ec)) throw InputError(SourcePos{path}, "output", "is a directory, expected a file path");
    fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    tmp_ = (dir / fmt::format(".{}.tmp.{}", target.filename().string(), ::getpid())).string();
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw InputError(SourcePos{path}, "output", fmt::format("cannot write: {}", std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(std::string_view text) {
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        const ssize_t n = ::write(fd_, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw InputError(SourcePos{path_}, "output", fmt::format("write failed: {}", std::strerror(errno)));
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
}

void AtomicFile::commit() {
    auto fail = [&](const char* what) { throw InputError(SourcePos{path_}, "output", fmt::format("{}: {}", what, std::strerror(errno))); };
    if (::fsync(fd_) != 0) fail("fsync failed");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot replace");
    tmp_.clear();
    // Make the rename itself durable.
    namespace fs = std::filesystem;
    const fs::path target(path_);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

void write_file_atomically(const std::string& path, const std::string& text) {
    AtomicFile f(path);
    f.write(text);
    f.commit();
}

}  // namespace memtax
