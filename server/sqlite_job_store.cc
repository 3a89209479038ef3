#include "server/sqlite_job_store.h"

#include <sqlite3.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/thread_name.h"

namespace gradwatch::server {
namespace {

namespace v1 = ::gradwatch::v1;

constexpr int kSchemaVersion = 1;
// Queued and in-flight bytes beyond which AppendEvent waits for the writer:
// a few hundred milliseconds of writing at most, since PutJob, which the
// server calls while answering SubmitJob, waits for everything queued.
constexpr size_t kMaxPendingBytes = size_t{8} << 20;

// Records and models are replaced in place (an upsert keeps a job's
// ordinal, hence LoadAll's order); events are only ever appended.
constexpr char kSchema[] = R"sql(
CREATE TABLE jobs (
  ordinal INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  state INTEGER NOT NULL,
  record BLOB NOT NULL
);
CREATE TABLE events (
  job_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  step INTEGER NOT NULL,
  event BLOB NOT NULL,
  PRIMARY KEY (job_id, sequence)
) WITHOUT ROWID;
CREATE TABLE models (
  job_id TEXT PRIMARY KEY,
  step INTEGER NOT NULL,
  model BLOB NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

absl::Status SqliteError(sqlite3* db, int code, absl::string_view what) {
  const std::string message = absl::StrCat(
      what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::FailedPreconditionError(
          absl::StrCat(message, " (is another server using it?)"));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, rc, what);
}

// Resets a statement and drops its bindings when it goes out of scope, so
// that a prepared statement is always ready for its next use.
class Use {
 public:
  explicit Use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  // Bound values must outlive the statement's steps.
  void Text(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                      SQLITE_STATIC);
  }
  void Blob(int index, const std::string& blob) {
    sqlite3_bind_blob(stmt_, index, blob.data(), static_cast<int>(blob.size()),
                      SQLITE_STATIC);
  }
  void Int(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  absl::string_view ColumnBlob(int column) {
    const void* data = sqlite3_column_blob(stmt_, column);
    return absl::string_view(
        static_cast<const char*>(data),
        static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  sqlite3_stmt* const stmt_;
};

template <typename Message>
absl::Status ParseInto(absl::string_view blob, absl::string_view what,
                       Message* message) {
  if (!message->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::DataLossError(absl::StrCat("cannot parse the stored ", what));
  }
  return absl::OkStatus();
}

}  // namespace

// Every statement the store runs after Open, prepared once.
class SqliteJobStore::Statements {
 public:
  static absl::StatusOr<std::unique_ptr<Statements>> Prepare(sqlite3* db) {
    auto statements = std::unique_ptr<Statements>(new Statements());
    const std::pair<sqlite3_stmt**, const char*> specs[] = {
        {&statements->begin, "BEGIN"},
        {&statements->commit, "COMMIT"},
        {&statements->rollback, "ROLLBACK"},
        {&statements->put_job,
         "INSERT INTO jobs (id, state, record) VALUES (?1, ?2, ?3) "
         "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
         "record = excluded.record"},
        {&statements->append_event,
         "INSERT INTO events (job_id, sequence, step, event) "
         "VALUES (?1, ?2, ?3, ?4)"},
        {&statements->put_model,
         "INSERT INTO models (job_id, step, model) VALUES (?1, ?2, ?3) "
         "ON CONFLICT (job_id) DO UPDATE SET step = excluded.step, "
         "model = excluded.model"},
        {&statements->delete_events, "DELETE FROM events WHERE job_id = ?1"},
        {&statements->delete_model, "DELETE FROM models WHERE job_id = ?1"},
        {&statements->delete_job, "DELETE FROM jobs WHERE id = ?1"},
        {&statements->select_jobs, "SELECT record FROM jobs ORDER BY ordinal"},
        {&statements->select_events,
         "SELECT event FROM events WHERE job_id = ?1 ORDER BY sequence"},
        {&statements->select_model,
         "SELECT model FROM models WHERE job_id = ?1"},
        {&statements->journal_mode, "PRAGMA journal_mode"},
    };
    for (const auto& [stmt, sql] : specs) {
      const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                        stmt, nullptr);
      if (rc != SQLITE_OK) {
        return SqliteError(db, rc, absl::StrCat("preparing \"", sql, "\""));
      }
    }
    return statements;
  }

  ~Statements() {
    for (sqlite3_stmt* stmt :
         {begin, commit, rollback, put_job, append_event, put_model,
          delete_events, delete_model, delete_job, select_jobs, select_events,
          select_model, journal_mode}) {
      sqlite3_finalize(stmt);  // a no-op for nullptr
    }
  }

  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* rollback = nullptr;
  sqlite3_stmt* put_job = nullptr;
  sqlite3_stmt* append_event = nullptr;
  sqlite3_stmt* put_model = nullptr;
  sqlite3_stmt* delete_events = nullptr;
  sqlite3_stmt* delete_model = nullptr;
  sqlite3_stmt* delete_job = nullptr;
  sqlite3_stmt* select_jobs = nullptr;
  sqlite3_stmt* select_events = nullptr;
  sqlite3_stmt* select_model = nullptr;
  sqlite3_stmt* journal_mode = nullptr;

 private:
  Statements() = default;
};

namespace {

// Locks the file, switches it to WAL and creates or checks the schema.
absl::Status SetUp(sqlite3* db) {
  // Taken before WAL mode so that the WAL index lives in this process's
  // memory and the lock is held until the store closes.
  absl::Status status =
      Exec(db, "PRAGMA locking_mode = EXCLUSIVE", "locking the store");
  if (!status.ok()) return status;
  {
    sqlite3_stmt* stmt = nullptr;
    int rc =
        sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &stmt, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    const std::string mode =
        rc == SQLITE_ROW
            ? reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))
            : "";
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "switching to WAL mode");
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("the store cannot use WAL mode (got \"", mode, "\")"));
    }
  }
  status = Exec(db, "PRAGMA synchronous = NORMAL", "setting synchronous");
  if (!status.ok()) return status;
  status = Exec(db, "BEGIN EXCLUSIVE", "locking the store");
  if (!status.ok()) return status;
  int version = 0;
  {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW) status = SqliteError(db, rc, "reading the schema");
  }
  if (status.ok() && version == 0) {
    status = Exec(db, kSchema, "creating the schema");
  } else if (status.ok() && version != kSchemaVersion) {
    status = absl::FailedPreconditionError(
        absl::StrCat("the store has schema version ", version,
                     "; this server reads version ", kSchemaVersion));
  }
  if (!status.ok()) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  return Exec(db, "COMMIT", "creating the schema");
}

// The sequence each stored job's next event must carry.
absl::StatusOr<absl::flat_hash_map<std::string, uint64_t>> NextSequences(
    sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(
      db,
      "SELECT id, (SELECT COALESCE(MAX(sequence) + 1, 0) FROM events "
      "WHERE job_id = jobs.id) FROM jobs",
      -1, &stmt, nullptr);
  absl::flat_hash_map<std::string, uint64_t> next;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) break;
    next[reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))] =
        static_cast<uint64_t>(sqlite3_column_int64(stmt, 1));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "reading the jobs");
  return next;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(
    const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  absl::Status status =
      rc == SQLITE_OK ? SetUp(db)
                      : SqliteError(db, rc, absl::StrCat("opening ", path));
  absl::StatusOr<std::unique_ptr<Statements>> statements;
  absl::StatusOr<absl::flat_hash_map<std::string, uint64_t>> next;
  if (status.ok()) {
    statements = Statements::Prepare(db);
    status = statements.status();
  }
  if (status.ok()) {
    next = NextSequences(db);
    status = next.status();
  }
  if (!status.ok()) {
    statements = nullptr;  // finalized before the connection closes
    sqlite3_close(db);
    return absl::Status(status.code(),
                        absl::StrCat(path, ": ", status.message()));
  }
  return std::unique_ptr<SqliteJobStore>(
      new SqliteJobStore(db, std::move(*statements), std::move(*next)));
}

SqliteJobStore::SqliteJobStore(
    sqlite3* db, std::unique_ptr<Statements> statements,
    absl::flat_hash_map<std::string, uint64_t> next_sequence)
    : next_sequence_(std::move(next_sequence)),
      db_(db),
      statements_(std::move(statements)) {
  writer_ = std::thread([this] {
    NameCurrentThread("gw-store-write");
    WriterLoop();
  });
}

SqliteJobStore::~SqliteJobStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
  }
  writer_.join();
  absl::MutexLock lock(&mu_);
  if (!error_.ok()) {
    std::fprintf(stderr, "gradwatch-server: job store: %s\n",
                 error_.ToString().c_str());
  }
  absl::MutexLock db_lock(&db_mu_);
  statements_.reset();
  sqlite3_close(db_);
}

uint64_t SqliteJobStore::Enqueue(Write write) {
  while (pending_bytes_ >= kMaxPendingBytes) written_cv_.Wait(&mu_);
  pending_bytes_ += write.blob.size();
  pending_.push_back(std::move(write));
  work_cv_.Signal();
  return ++enqueued_;
}

absl::Status SqliteJobStore::AwaitWritten(uint64_t ticket) {
  while (written_ < ticket) written_cv_.Wait(&mu_);
  return std::exchange(error_, absl::OkStatus());
}

void SqliteJobStore::WriterLoop() {
  while (true) {
    std::deque<Write> batch;
    size_t bytes = 0;
    {
      absl::MutexLock lock(&mu_);
      while (pending_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (pending_.empty()) return;
      batch.swap(pending_);
    }
    for (const Write& write : batch) bytes += write.blob.size();
    absl::Status status;
    {
      absl::MutexLock db_lock(&db_mu_);
      status = CommitBatch(batch);
    }
    absl::MutexLock lock(&mu_);
    written_ += batch.size();
    pending_bytes_ -= bytes;
    if (!status.ok() && error_.ok()) error_ = status;
    written_cv_.SignalAll();
  }
}

absl::Status SqliteJobStore::CommitBatch(const std::deque<Write>& batch) {
  {
    Use begin(statements_->begin);
    const int rc = begin.Step();
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, "starting a write");
  }
  absl::Status status;
  for (const Write& write : batch) {
    absl::Status written = Execute(write);
    if (!written.ok() && status.ok()) status = written;
  }
  Use commit(statements_->commit);
  const int rc = commit.Step();
  if (rc != SQLITE_DONE) {
    status = SqliteError(db_, rc, "committing writes");
    Use rollback(statements_->rollback);
    rollback.Step();
  }
  return status;
}

absl::Status SqliteJobStore::Execute(const Write& write) {
  sqlite3_stmt* stmts[3] = {nullptr, nullptr, nullptr};
  switch (write.kind) {
    case Write::Kind::kJob:
      stmts[0] = statements_->put_job;
      break;
    case Write::Kind::kEvent:
      stmts[0] = statements_->append_event;
      break;
    case Write::Kind::kModel:
      stmts[0] = statements_->put_model;
      break;
    case Write::Kind::kDelete:
      stmts[0] = statements_->delete_events;
      stmts[1] = statements_->delete_model;
      stmts[2] = statements_->delete_job;
      break;
  }
  for (sqlite3_stmt* stmt : stmts) {
    if (stmt == nullptr) break;
    Use use(stmt);
    use.Text(1, write.job_id);
    if (write.kind == Write::Kind::kEvent) {
      use.Int(2, write.number);
      use.Int(3, write.step);
      use.Blob(4, write.blob);
    } else if (write.kind != Write::Kind::kDelete) {
      use.Int(2, write.number);
      use.Blob(3, write.blob);
    }
    const int rc = use.Step();
    if (rc != SQLITE_DONE) {
      return SqliteError(db_, rc, absl::StrCat("writing job ", write.job_id));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteJobStore::PutJob(const v1::Job& job) {
  Write write{Write::Kind::kJob, job.id(), job.state(), 0,
              job.SerializeAsString()};
  absl::MutexLock lock(&mu_);
  next_sequence_.try_emplace(job.id(), 0);
  return AwaitWritten(Enqueue(std::move(write)));
}

absl::Status SqliteJobStore::AppendEvent(const v1::JobEvent& event) {
  // Serialized before taking the lock: the caller is a training thread.
  Write write{Write::Kind::kEvent, event.job_id(),
              static_cast<int64_t>(event.sequence()),
              static_cast<int64_t>(event.step()), event.SerializeAsString()};
  absl::MutexLock lock(&mu_);
  auto next = next_sequence_.find(event.job_id());
  if (next == next_sequence_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no stored job ", event.job_id(), " for the event"));
  }
  if (event.sequence() != next->second) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", event.job_id(), ": event ", event.sequence(),
                     " arrived after ", next->second, " stored events"));
  }
  ++next->second;
  Enqueue(std::move(write));
  return std::exchange(error_, absl::OkStatus());
}

absl::Status SqliteJobStore::PutModel(const v1::Model& model) {
  Write write{Write::Kind::kModel, model.job_id(),
              static_cast<int64_t>(model.step()), 0, model.SerializeAsString()};
  absl::MutexLock lock(&mu_);
  if (!next_sequence_.contains(model.job_id())) {
    return absl::NotFoundError(
        absl::StrCat("no stored job ", model.job_id(), " for the model"));
  }
  return AwaitWritten(Enqueue(std::move(write)));
}

absl::Status SqliteJobStore::DeleteJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  next_sequence_.erase(job_id);
  return AwaitWritten(Enqueue(Write{Write::Kind::kDelete, job_id, 0, 0, ""}));
}

absl::Status SqliteJobStore::Flush() {
  absl::MutexLock lock(&mu_);
  return AwaitWritten(enqueued_);
}

absl::StatusOr<std::vector<JobStore::StoredJob>> SqliteJobStore::LoadAll() {
  absl::Status flushed = Flush();
  if (!flushed.ok()) return flushed;
  absl::MutexLock db_lock(&db_mu_);
  std::vector<StoredJob> all;
  Use jobs(statements_->select_jobs);
  int rc;
  while ((rc = jobs.Step()) == SQLITE_ROW) {
    StoredJob& stored = all.emplace_back();
    absl::Status parsed = ParseInto(jobs.ColumnBlob(0), "job", &stored.job);
    if (!parsed.ok()) return parsed;
    const std::string& id = stored.job.id();
    Use events(statements_->select_events);
    events.Text(1, id);
    int event_rc;
    while ((event_rc = events.Step()) == SQLITE_ROW) {
      parsed = ParseInto(events.ColumnBlob(0), absl::StrCat("event of ", id),
                         &stored.events.emplace_back());
      if (!parsed.ok()) return parsed;
    }
    if (event_rc != SQLITE_DONE) {
      return SqliteError(db_, event_rc, absl::StrCat("reading events of ", id));
    }
    Use model(statements_->select_model);
    model.Text(1, id);
    const int model_rc = model.Step();
    if (model_rc == SQLITE_ROW) {
      parsed = ParseInto(model.ColumnBlob(0), absl::StrCat("model of ", id),
                         &stored.model.emplace());
      if (!parsed.ok()) return parsed;
    } else if (model_rc != SQLITE_DONE) {
      return SqliteError(db_, model_rc, absl::StrCat("reading model of ", id));
    }
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "reading the jobs");
  return all;
}

absl::StatusOr<std::string> SqliteJobStore::JournalMode() {
  absl::MutexLock db_lock(&db_mu_);
  Use pragma(statements_->journal_mode);
  const int rc = pragma.Step();
  if (rc != SQLITE_ROW) return SqliteError(db_, rc, "reading journal_mode");
  return std::string(pragma.ColumnBlob(0));
}

absl::StatusOr<uint64_t> SqliteJobStore::SizeBytes() {
  std::string path;
  {
    absl::MutexLock db_lock(&db_mu_);
    const char* name = sqlite3_db_filename(db_, "main");
    if (name != nullptr) path = name;
  }
  if (path.empty()) return absl::FailedPreconditionError("no database file");
  std::error_code error;
  const uintmax_t main_bytes = std::filesystem::file_size(path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("size of ", path, ": ", error.message()));
  }
  // The log holds committed writes not yet checkpointed into the file;
  // between checkpoints it is absent or empty.
  const uintmax_t wal_bytes = std::filesystem::file_size(path + "-wal", error);
  return static_cast<uint64_t>(main_bytes + (error ? 0 : wal_bytes));
}

}  // namespace gradwatch::server
