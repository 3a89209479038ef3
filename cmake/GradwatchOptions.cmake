# Compiler settings shared by every gradwatch target (not by generated code).
function(gradwatch_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(GRADWATCH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
