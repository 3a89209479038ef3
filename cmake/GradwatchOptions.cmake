# Compiler settings shared by every gradwatch target (not by generated code).

# GRADWATCH_SANITIZE: "" (none), "address" (AddressSanitizer plus
# UndefinedBehaviorSanitizer) or "thread" (ThreadSanitizer). Applied to the
# project's own targets only; Debian's libraries stay uninstrumented, which is
# why scripts/sanitizers/ holds suppressions for findings inside them (and,
# for TSan, annotations of their synchronization).
set(GRADWATCH_SANITIZE "" CACHE STRING
    "Sanitizer for gradwatch targets: empty, address or thread")
set_property(CACHE GRADWATCH_SANITIZE PROPERTY STRINGS "" address thread)
if(GRADWATCH_SANITIZE STREQUAL "address")
  set(GRADWATCH_SANITIZE_FLAGS -fsanitize=address,undefined
      -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
elseif(GRADWATCH_SANITIZE STREQUAL "thread")
  set(GRADWATCH_SANITIZE_FLAGS -fsanitize=thread -fno-omit-frame-pointer -g)
  # Debian's libprotobuf is built without TSan, and protobuf's map_field.h
  # gives MapFieldBase two more members when __SANITIZE_THREAD__ is defined:
  # compiled with the macro, gradwatch's code sees a JobSpec (it has a map
  # field) of 200 bytes where libprotobuf and the generated code see 192,
  # and reads its fields at the wrong offsets (a SEGV in the first copy of a
  # spec). So gradwatch's code is compiled without the macro, as the
  # libraries were. GRADWATCH_THREAD_SANITIZER tells gradwatch's code
  # instead, and _GLIBCXX_TSAN keeps libstdc++'s shared_ptr release in its
  # TSan-friendly form, which the macro used to select.
  #
  # -Wno-tsan: GCC warns of every std::atomic_thread_fence under TSan, which
  # does not model fences. gradwatch's code has none; absl's flag
  # SequenceLock, inlined into server/main.cc, has two, and its flags are
  # read on the main thread only.
  set(GRADWATCH_SANITIZE_COMPILE_ONLY_FLAGS -U__SANITIZE_THREAD__
      -D_GLIBCXX_TSAN=1 -DGRADWATCH_THREAD_SANITIZER=1
      $<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
elseif(NOT GRADWATCH_SANITIZE STREQUAL "")
  message(FATAL_ERROR
    "GRADWATCH_SANITIZE must be empty, address or thread, not "
    "'${GRADWATCH_SANITIZE}'")
else()
  set(GRADWATCH_SANITIZE_FLAGS "")
endif()

if(GRADWATCH_SANITIZE STREQUAL "thread")
  # absl::Mutex and OpenMP's fork, join and critical sections synchronize
  # inside Debian's uninstrumented absl and libgomp, invisibly to TSan: this
  # object tells TSan what they do. It goes into every executable, where its
  # definitions take the place of the libraries' entry points. Not itself
  # instrumented.
  add_library(gradwatch_tsan_annotations OBJECT
    ${PROJECT_SOURCE_DIR}/scripts/sanitizers/tsan_annotations.cc)
  target_link_libraries(gradwatch_tsan_annotations
    PUBLIC absl::synchronization ${CMAKE_DL_LIBS})
  target_compile_options(gradwatch_tsan_annotations PRIVATE -Wall -Wextra)
  if(GRADWATCH_WERROR)
    target_compile_options(gradwatch_tsan_annotations PRIVATE -Werror)
  endif()
endif()

function(gradwatch_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(GRADWATCH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(GRADWATCH_SANITIZE_FLAGS)
    # PUBLIC link flags: any executable linking a sanitized library needs the
    # sanitizer runtime even if it is not itself a gradwatch target.
    target_compile_options(${target} PRIVATE ${GRADWATCH_SANITIZE_FLAGS}
                           ${GRADWATCH_SANITIZE_COMPILE_ONLY_FLAGS})
    target_link_options(${target} PUBLIC ${GRADWATCH_SANITIZE_FLAGS})
  endif()
  get_target_property(target_type ${target} TYPE)
  if(TARGET gradwatch_tsan_annotations AND target_type STREQUAL "EXECUTABLE")
    target_link_libraries(${target} PRIVATE gradwatch_tsan_annotations)
  endif()
endfunction()
