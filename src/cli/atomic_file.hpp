#pragma once
// Output at the edge: reports and streamed documents reach their file atomically.
#include <string>
#include <string_view>

namespace memtax {

// A file written atomically while it streams: a temporary file in the target's directory,
// flushed to disk and renamed over the target by commit(); destroyed uncommitted (an error, a
// kill), it leaves the old file as it was.
class AtomicFile {
public:
    explicit AtomicFile(const std::string& path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    void write(std::string_view text);
    void commit();

private:
    std::string path_, tmp_;
    int fd_ = -1;
};

// Writes `text` to `path` atomically (temporary file in the same directory, then rename), so
// a reader never sees half a report. Throws InputError when the directory is not writable.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace memtax
