# Compiler settings shared by every gradwatch target (not by generated code).

# GRADWATCH_SANITIZE: "" (none), "address" (AddressSanitizer plus
# UndefinedBehaviorSanitizer) or "thread" (ThreadSanitizer). Applied to the
# project's own targets only; Debian's libraries stay uninstrumented, which is
# why scripts/sanitizers/ holds suppressions for findings inside them.
set(GRADWATCH_SANITIZE "" CACHE STRING
    "Sanitizer for gradwatch targets: empty, address or thread")
set_property(CACHE GRADWATCH_SANITIZE PROPERTY STRINGS "" address thread)
if(GRADWATCH_SANITIZE STREQUAL "address")
  set(GRADWATCH_SANITIZE_FLAGS -fsanitize=address,undefined
      -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
elseif(GRADWATCH_SANITIZE STREQUAL "thread")
  set(GRADWATCH_SANITIZE_FLAGS -fsanitize=thread -fno-omit-frame-pointer -g)
elseif(NOT GRADWATCH_SANITIZE STREQUAL "")
  message(FATAL_ERROR
    "GRADWATCH_SANITIZE must be empty, address or thread, not "
    "'${GRADWATCH_SANITIZE}'")
else()
  set(GRADWATCH_SANITIZE_FLAGS "")
endif()

function(gradwatch_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(GRADWATCH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(GRADWATCH_SANITIZE_FLAGS)
    # PUBLIC link flags: any executable linking a sanitized library needs the
    # sanitizer runtime even if it is not itself a gradwatch target.
    target_compile_options(${target} PRIVATE ${GRADWATCH_SANITIZE_FLAGS})
    target_link_options(${target} PUBLIC ${GRADWATCH_SANITIZE_FLAGS})
  endif()
endfunction()
